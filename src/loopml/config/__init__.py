"""The project file (``loopml.yaml``) as one typed, immutable tree.

Read once with :func:`load_settings` and passed explicitly. Every key has a default, so a minimal
file names only the source, the target and the task. Environment variables override the file:
``LOOPML_DB_URL`` and ``LOOPML_ARTIFACTS_URL`` for the stores, ``LOOPML_ONLINE_URL`` for the shared
online state of window features, and ``LOOPML_<SECTION>__<KEY>`` for any key
(``LOOPML_SERVE__PORT=9000``). An unknown key, a wrong type, a missing file or bad YAML is a
:class:`~loopml.errors.ConfigError` whose one-line message names the key and suggests the closest one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from loopml.config._base import _ENV_ALIASES, ENV_PREFIX, PROJECT_FILE, _Frozen
from loopml.config.actions import (
    ActionRuleConfig,
    ActionsConfig,
    ConditionConfig,
    DedupeConfig,
    EndpointConfig,
    RateLimitConfig,
    action_fields,
)
from loopml.config.data import (
    CleaningConfig,
    ColumnRuleConfig,
    ContractConfig,
    FillPolicy,
    FilterConfig,
    RetentionConfig,
    SourceConfig,
    StoreConfig,
)
from loopml.config.loop import GateConfig, MonitorConfig, PublicRouteGroup, RetrainConfig, ServeConfig
from loopml.config.modeling import (
    CostConfig,
    FeaturesConfig,
    ForecastConfig,
    MaintenanceConfig,
    RankingConfig,
    SequenceFeaturesConfig,
    TrainConfig,
    TuneConfig,
    WindowFeatureConfig,
)
from loopml.config.schema import SCHEMA_FILE, json_schema, schema_header, with_schema_header, write_schema
from loopml.enums import TaskKind
from loopml.errors import ConfigError, ProjectNotFoundError, did_you_mean

__all__ = [
    "PROJECT_FILE",
    "SCHEMA_FILE",
    "ActionRuleConfig",
    "ActionsConfig",
    "CleaningConfig",
    "ColumnRuleConfig",
    "ConditionConfig",
    "ContractConfig",
    "CostConfig",
    "DedupeConfig",
    "EndpointConfig",
    "FeaturesConfig",
    "FillPolicy",
    "FilterConfig",
    "ForecastConfig",
    "GateConfig",
    "MaintenanceConfig",
    "MonitorConfig",
    "PublicRouteGroup",
    "RankingConfig",
    "RateLimitConfig",
    "RetentionConfig",
    "RetrainConfig",
    "SequenceFeaturesConfig",
    "ServeConfig",
    "Settings",
    "SourceConfig",
    "StoreConfig",
    "TrainConfig",
    "TuneConfig",
    "WindowFeatureConfig",
    "action_fields",
    "failure_model_name",
    "failure_settings",
    "json_schema",
    "load_settings",
    "parse_settings",
    "schema_header",
    "with_schema_header",
    "write_schema",
]


class Settings(_Frozen):
    """The whole project file."""

    name: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Name of the ML system: the registry name of its model and the name of its data set.",
        examples=["fraud"],
    )
    task: TaskKind = Field(
        TaskKind.BINARY,
        description="What the model predicts: binary, multiclass, regression, forecast or ranking.",
    )
    source: SourceConfig = Field(
        ...,
        description="Where the training data comes from.",
        examples=[{"kind": "csv", "path": "data/orders.csv"}],
    )
    target: str = Field(..., description="Column the model predicts (the label).", examples=["is_fraud"])
    id_column: str | None = Field(
        None,
        description="Column unique per row, echoed in predictions; never a feature.",
        examples=["transaction_id"],
    )
    event_time: str | None = Field(
        None,
        description="Column with each row's time: the holdout is the newest rows, and window features "
        "and monitoring windows use it. Not a feature unless features.datetime_parts is written or "
        "features.include names it.",
        examples=["tx_datetime"],
    )
    cleaning: CleaningConfig = Field(CleaningConfig(), description="How raw rows are cleaned at ingest.")
    contract: ContractConfig = Field(
        ContractConfig(), description="Rules added to the inferred data contract."
    )
    features: FeaturesConfig = Field(FeaturesConfig(), description="Which columns feed the model and how.")
    train: TrainConfig = Field(TrainConfig(), description="How a model is fitted and judged.")
    serve: ServeConfig = Field(ServeConfig(), description="The prediction API.")
    monitor: MonitorConfig = Field(MonitorConfig(), description="Monitoring windows and alert thresholds.")
    retrain: RetrainConfig = Field(
        RetrainConfig(), description="When to retrain, and how a new model may serve."
    )
    actions: ActionsConfig = Field(
        ActionsConfig(), description="Actions triggered by predictions and alerts."
    )
    forecast: ForecastConfig | None = Field(None, description="Settings of task: forecast (required by it).")
    maintenance: MaintenanceConfig | None = Field(
        None, description="Predictive maintenance: the remaining-useful-life target and a failure model."
    )
    ranking: RankingConfig | None = Field(None, description="Settings of task: ranking (required by it).")
    store: StoreConfig = Field(StoreConfig(), description="Where metadata and artifacts are kept.")
    project_dir: Path = Field(Path("."), exclude=True)

    @field_validator("project_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @property
    def state_dir(self) -> Path:
        """``<project>/.loopml``: the default home of the SQLite store and the artifacts."""
        return self.project_dir / ".loopml"

    @property
    def db_url(self) -> str:
        return self.store.db_url or f"sqlite:///{self.state_dir / 'loopml.db'}"

    @property
    def artifacts_url(self) -> str:
        return self.store.artifacts_url or str(self.state_dir / "artifacts")


def failure_model_name(settings: Settings) -> str:
    """The registry name of the maintenance failure model (``maintenance.failure_model`` or
    ``<name>-failure``)."""
    config = settings.maintenance
    return (config.failure_model if config else None) or f"{settings.name}-failure"


def failure_settings(settings: Settings) -> Settings:
    """The maintenance failure model's settings: the project's, with the binary failure label as
    target and the RUL (the other label) dropped from its features.

    ``loopml train`` and ``loopml retrain`` train, gate and promote this second model beside the
    project's own (the RUL) whenever the project file has a ``maintenance:`` section.
    """
    config = settings.maintenance
    if config is None:
        raise ConfigError(
            f"project '{settings.name}' has no 'maintenance' section in {PROJECT_FILE}; "
            "add one (see the maintenance example) to train its failure model."
        )
    features = settings.features.model_copy(update={"drop": [*settings.features.drop, settings.target]})
    return settings.model_copy(
        update={
            "name": failure_model_name(settings),
            "task": TaskKind.BINARY,
            "target": config.failure_target,
            "features": features,
            "train": settings.train.model_copy(update={"metric": None}),
        }
    )


def load_settings(
    project: str | os.PathLike[str] = ".", environ: Mapping[str, str] | None = None
) -> Settings:
    """Read ``loopml.yaml`` from a project directory (or a file path) and apply environment overrides."""
    path = Path(project)
    file = path if path.suffix in {".yaml", ".yml"} else path / PROJECT_FILE
    if not file.is_file():
        raise ProjectNotFoundError(
            f"no {PROJECT_FILE} in {file.parent.resolve()}",
            hint="Create one with `loopml init DIR --example fraud`, or pass --project DIR.",
        )
    text = file.read_text(encoding="utf-8")
    return parse_settings(text, project_dir=file.parent, source=str(file), environ=environ)


def parse_settings(
    text: str,
    *,
    project_dir: str | os.PathLike[str] = ".",
    source: str = PROJECT_FILE,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Parse the YAML text of a project file into :class:`Settings`."""
    data, lines = _load_yaml(text, source)
    from_env: dict[tuple[str, ...], str] = {}
    data = _apply_env(data, os.environ if environ is None else environ, from_env)
    try:
        return Settings.model_validate({**data, "project_dir": Path(project_dir)})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, lines, from_env)) from None


def _load_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}."
        )
    return data, _line_numbers(node)


def _line_numbers(node: yaml.Node | None, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map each key path of a composed YAML mapping to its 1-based line number."""
    found: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            found[path] = key.start_mark.line + 1
            found.update(_line_numbers(value, path))
    return found


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str], from_env: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Merge ``LOOPML_*`` overrides into ``data``; ``from_env`` records which key came from which variable."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(f"{ENV_PREFIX}TEST_") or not value:
            continue
        key = name[len(ENV_PREFIX) :]
        path = _ENV_ALIASES.get(key) or tuple(part.lower() for part in key.split("__"))
        if len(path) == 1 and path[0] not in Settings.model_fields:
            continue  # a LOOPML_* variable that is not a settings override (LOOPML_TEST_...)
        target = merged
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"environment variable {name}: '{part}' is not a section.")
        target[path[-1]] = yaml.safe_load(value)
        if from_env is not None:
            from_env[path] = name
    return merged


def _explain(
    exc: ValidationError,
    source: str,
    lines: dict[tuple[str, ...], int],
    from_env: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """Turn the first pydantic error into one line naming the key (and the variable that set it)."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc)
    overrides = (from_env or {}).items()
    variable = next(
        (var for path, var in overrides if loc[: len(path)] == path or path[: len(loc)] == loc), None
    )
    line = lines.get(loc) or lines.get(loc[:-1])
    where = f"{source}" + (f" line {line}" if line else "")
    if variable:
        where = f"environment variable {variable}"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key '{key}'; {did_you_mean(loc[-1], _valid_keys(loc[:-1]))}"
    if kind == "missing":
        return f"{where}: missing required key '{key}'; add it to {PROJECT_FILE}."
    got = error.get("input")
    if kind == "value_error" and isinstance(got, dict | list):  # a whole section: its message says it
        message = error["msg"].removeprefix("Value error, ")
        return f"{where}: '{key}': {message}" + ("" if message.endswith(("?", ".")) else ".")
    if kind in ("literal_error", "enum") and isinstance(got, str):  # one of a closed set: name the closest
        choices = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        return f"{where}: '{key}' is {got!r}; {did_you_mean(got, choices)}"
    if kind == "value_error" and isinstance(got, str):  # our validators' own words, case kept
        message = error["msg"].removeprefix("Value error, ")
        return f"{where}: '{key}' is {got!r}: {message}" + ("" if message.endswith(("?", ".")) else ".")
    return f"{where}: '{key}' {error['msg'].lower()}, got {got!r}."


def _valid_keys(parent: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in parent:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [name for name, f in model.model_fields.items() if not f.exclude]
