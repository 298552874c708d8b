"""The project file (``loopml.yaml``) as one typed, immutable tree.

Read once with :func:`load_settings` and passed explicitly. Every key has a default, so a minimal
file names only the source, the target and the task. Environment variables override the file:
``LOOPML_DB_URL`` and ``LOOPML_ARTIFACTS_URL`` for the stores, and ``LOOPML_<SECTION>__<KEY>`` for any
key (``LOOPML_SERVE__PORT=9000``). An unknown key, a wrong type, a missing file or bad YAML is a
:class:`~loopml.errors.ConfigError` whose one-line message names the key and suggests the closest one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loopml.errors import ConfigError, ProjectNotFoundError, did_you_mean

__all__ = [
    "PROJECT_FILE",
    "FeaturesConfig",
    "ServeConfig",
    "Settings",
    "SourceConfig",
    "StoreConfig",
    "TrainConfig",
    "WindowFeatureConfig",
    "load_settings",
    "parse_settings",
]

PROJECT_FILE = "loopml.yaml"
ENV_PREFIX = "LOOPML_"
_DURATION = re.compile(r"\d+[smhdw]")
_ENV_ALIASES = {"DB_URL": ("store", "db_url"), "ARTIFACTS_URL": ("store", "artifacts_url")}


DatetimePart = Literal["hour", "dayofweek", "day", "month", "is_weekend", "is_night"]
_DEFAULT_PARTS: tuple[DatetimePart, ...] = ("hour", "dayofweek", "is_weekend", "is_night")
Aggregate = Literal["count", "sum", "mean", "max"]
_DEFAULT_AGGS: tuple[Aggregate, ...] = ("count", "mean")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class SourceConfig(_Frozen):
    """Where the training data comes from."""

    kind: str = Field("parquet", description="Source plugin: csv, parquet (or a third-party name).")
    path: str = Field(..., description="File, folder or glob, relative to the project directory.")
    options: dict[str, Any] = Field(default_factory=dict, description="Passed to the reader.")


class WindowFeatureConfig(_Frozen):
    """Aggregates of a column per entity over time windows, computed point-in-time.

    ``{entity: customer_id, column: tx_amount, aggs: [count, mean], windows: [1d, 7d]}`` gives the
    card's number of transactions and mean amount over the previous day and week. A ``label_delay``
    (for a column such as the fraud label, known only days later) shifts the windows back so that
    only events older than the delay count.
    """

    entity: str
    column: str | None = Field(None, description="Column to aggregate; omitted: count events.")
    aggs: list[Aggregate] = Field(default_factory=lambda: list(_DEFAULT_AGGS))
    windows: list[str] = Field(default_factory=lambda: ["1d", "7d", "30d"])
    label_delay: str | None = None

    @field_validator("windows", "label_delay")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        bad = [v for v in ([value] if isinstance(value, str) else value or []) if not _DURATION.fullmatch(v)]
        if bad:
            raise ValueError(f"durations look like 30m, 1h, 7d or 2w; got {bad}")
        return value


class FeaturesConfig(_Frozen):
    """Which columns feed the model and how."""

    include: list[str] | None = Field(None, description="Columns to use; default: all but the reserved.")
    drop: list[str] = Field(default_factory=list, description="Columns never used as features.")
    categorical: list[str] = Field(default_factory=list, description="Force these columns categorical.")
    datetime_parts: list[DatetimePart] = Field(default_factory=lambda: list(_DEFAULT_PARTS))
    windows: list[WindowFeatureConfig] = Field(default_factory=list, description="Entity window features.")


class TrainConfig(_Frozen):
    """How a model is fitted and judged."""

    model: Literal["lightgbm", "hist_gradient_boosting", "logistic"] = "lightgbm"
    params: dict[str, Any] = Field(default_factory=dict)
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    metric: Literal["average_precision", "roc_auc"] = "average_precision"
    precision_at_k: int = Field(100, ge=1)
    seed: int = 42


class ServeConfig(_Frozen):
    """The prediction API."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_batch: int = Field(1000, ge=1)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    log_predictions: bool = True
    alias: str = "champion"


class StoreConfig(_Frozen):
    """Where metadata and artifacts live; defaults sit under ``<project>/.loopml/``."""

    db_url: str | None = None
    artifacts_url: str | None = None


class Settings(_Frozen):
    """The whole project file."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    task: Literal["binary", "multiclass", "regression"] = "binary"
    source: SourceConfig
    target: str
    id_column: str | None = None
    event_time: str | None = None
    features: FeaturesConfig = FeaturesConfig()
    train: TrainConfig = TrainConfig()
    serve: ServeConfig = ServeConfig()
    store: StoreConfig = StoreConfig()
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
