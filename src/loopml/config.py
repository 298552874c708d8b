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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from loopml.errors import ConfigError, ProjectNotFoundError, did_you_mean

__all__ = [
    "PROJECT_FILE",
    "ActionRuleConfig",
    "ActionsConfig",
    "CleaningConfig",
    "ColumnRuleConfig",
    "ConditionConfig",
    "ContractConfig",
    "DedupeConfig",
    "EndpointConfig",
    "FeaturesConfig",
    "FillPolicy",
    "FilterConfig",
    "ForecastConfig",
    "GateConfig",
    "MaintenanceConfig",
    "MonitorConfig",
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
    "WindowFeatureConfig",
    "action_fields",
    "failure_model_name",
    "failure_settings",
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
    """Where the training data comes from.

    Files: ``{kind: csv, path: data/*.csv}``. SQL: ``{kind: sql, url: postgresql://..., table: orders}``
    or a ``query``. With ``watermark: <column>`` each ingest reads only rows whose value in that column
    is greater than the largest one already ingested (the column must grow for new rows).
    """

    kind: str = Field("parquet", description="Source plugin: csv, parquet, sql (or a third-party name).")
    path: str | None = Field(None, description="File, folder or glob, relative to the project directory.")
    url: str | None = Field(None, description="SQLAlchemy URL of an SQL source.")
    table: str | None = Field(None, description="Table of an SQL source.")
    query: str | None = Field(None, description="SELECT of an SQL source (instead of a table).")
    watermark: str | None = Field(None, description="Column for incremental ingest: only newer rows.")
    chunk_rows: int = Field(100_000, ge=1, description="Rows read per chunk (bounds memory).")
    options: dict[str, Any] = Field(default_factory=dict, description="Passed to the reader.")

    @model_validator(mode="after")
    def _where(self) -> SourceConfig:
        if self.kind == "sql":
            if not self.url:
                raise _missing("url")
            if (self.table is None) == (self.query is None):
                raise ValueError("an sql source takes exactly one of 'table' or 'query'")
        elif self.path is None and self.url is None:
            raise _missing("path")
        return self


def _missing(key: str) -> ValidationError:
    """A pydantic "missing key" error located at ``key`` (reported like any other missing key)."""
    return ValidationError.from_exception_data(
        "source", [InitErrorDetails(type="missing", loc=(key,), input={})]
    )


FilterOp = Literal[
    "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in",
    "startswith", "endswith", "matches", "not_matches", "is_null", "not_null",
]  # fmt: skip


class FilterConfig(_Frozen):
    """A row filter: rows for which ``column op value`` holds go to quarantine under ``rule``.

    ``{rule: cancellation, column: InvoiceNo, op: startswith, value: C}``. Filters never drop a row
    silently: accepted + quarantined = rows read, always.
    """

    rule: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    column: str
    op: FilterOp
    value: Any = None


class FillPolicy(_Frozen):
    """Replace a missing value with ``fill``."""

    fill: Any


MissingPolicy = Literal["keep", "quarantine"] | FillPolicy


class CleaningConfig(_Frozen):
    """How raw rows are cleaned before the contract is enforced (every key has a default)."""

    trim: bool = Field(True, description="Strip surrounding whitespace from text values.")
    dedupe: Literal["none", "id", "row"] = Field("none", description="Quarantine repeated ids or rows.")
    missing: dict[str, MissingPolicy] = Field(
        default_factory=dict, description="Per column: keep, quarantine, or {fill: value}."
    )
    out_of_range: Literal["quarantine", "clip"] = "quarantine"
    unknown_category: Literal["quarantine", "keep"] = "quarantine"
    filters: list[FilterConfig] = Field(default_factory=list, description="Rows to quarantine by rule.")


class ColumnRuleConfig(_Frozen):
    """Extra contract rules for one column; each set key overrides what was inferred."""

    dtype: Literal["int", "float", "bool", "string", "datetime"] | None = None
    nullable: bool | None = None
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    pattern: str | None = Field(None, description="A regular expression every value must match.")
    unique: bool | None = None


class ContractConfig(_Frozen):
    """Rules added to the inferred data contract."""

    category_cap: int = Field(50, ge=0, description="Infer allowed categories up to this many values.")
    columns: dict[str, ColumnRuleConfig] = Field(default_factory=dict)


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


SequenceStat = Literal["mean", "std", "slope"]
_SEQUENCE_STATS: tuple[SequenceStat, ...] = ("mean", "std", "slope")


class SequenceFeaturesConfig(_Frozen):
    """Rolling statistics over each entity's last ``window`` rows in ``order``, computed point-in-time.

    ``{entity: engine, order: cycle, window: 30}`` gives each row the mean, standard deviation and
    slope of every sensor over that engine's last 30 cycles (see ``loopml.features.sequences``). The
    model then sees ``order``, the informative columns and their statistics; columns with fewer than
    ``min_distinct`` distinct training values (constant sensors) are dropped.
    """

    entity: str = Field(..., description="Column naming the unit (engine, pump, ...); never a feature.")
    order: str = Field(..., description="Column ordering a unit's rows (cycle number); also a feature.")
    columns: list[str] | None = Field(None, description="Columns to window; default: every numeric one.")
    window: int = Field(30, ge=2, description="Rows per window.")
    stats: list[SequenceStat] = Field(default_factory=lambda: list(_SEQUENCE_STATS))
    min_distinct: int = Field(3, ge=1, description="Fewer distinct training values: dropped as constant.")


class FeaturesConfig(_Frozen):
    """Which columns feed the model and how."""

    include: list[str] | None = Field(None, description="Columns to use; default: all but the reserved.")
    drop: list[str] = Field(default_factory=list, description="Columns never used as features.")
    categorical: list[str] = Field(default_factory=list, description="Force these columns categorical.")
    datetime_parts: list[DatetimePart] = Field(default_factory=lambda: list(_DEFAULT_PARTS))
    windows: list[WindowFeatureConfig] = Field(default_factory=list, description="Entity window features.")
    sequences: SequenceFeaturesConfig | None = Field(
        None, description="Per-unit rolling window statistics (predictive maintenance)."
    )
    rare_category_count: int = Field(
        20, ge=1, description="High-cardinality columns: categories seen fewer times share one code."
    )
    max_categories: int = Field(100, ge=2, description="High-cardinality columns: at most this many codes.")


class TuneConfig(_Frozen):
    """Hyper-parameter search with Optuna; the study is kept in the metadata store."""

    trials: int = Field(0, ge=0, description="Trial budget; 0 turns tuning off.")
    timeout_s: float = Field(120.0, gt=0, description="Time budget in seconds.")
    pruning: bool = True


class CostConfig(_Frozen):
    """What each kind of mistake costs, for choosing a binary decision threshold."""

    false_negative: float = Field(1.0, ge=0, description="Cost of a missed positive (a fraud let through).")
    false_positive: float = Field(1.0, ge=0, description="Cost of a false alarm (an investigation).")


class TrainConfig(_Frozen):
    """How a model is fitted and judged."""

    model: str = Field(
        "lightgbm",
        description="lightgbm | hist_gradient_boosting | logistic (classification) | ridge (regression), "
        "or any scikit-learn-compatible estimator as 'package.module:Class'.",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Of the training part, for tuning.")
    metric: str | None = Field(None, description="Primary metric; default: the task's.")
    precision_at_k: int = Field(100, ge=1)
    cv_folds: int = Field(0, ge=0, description="Time-ordered cross-validation folds on the training part.")
    bootstrap: int = Field(100, ge=0, description="Bootstrap resamples for confidence intervals.")
    segments: list[str] = Field(default_factory=list, description="Columns to report metrics per value of.")
    group_column: str | None = Field(
        None, description="Without an event time: keep each group's rows on one side of the split."
    )
    costs: CostConfig = CostConfig()
    tune: TuneConfig = TuneConfig()
    dask: str | None = Field(
        None,
        description="Train on a Dask cluster: a scheduler address (tcp://host:8786) or 'local'. LightGBM "
        "trains with lightgbm.dask over the workers; Optuna trials run on the workers, sharing the study "
        "in the store (use PostgreSQL when the workers are on other machines). See docs/scaling.md.",
    )
    report: bool = True
    seed: int = 42


class ServeConfig(_Frozen):
    """The prediction API."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_batch: int = Field(1000, ge=1)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    log_predictions: bool = True
    journal_dir: str | None = Field(
        None,
        description="Folder of the crash journal of logged predictions (default <project>/.loopml/journal); "
        "keep it on a disk that outlives the process.",
    )
    journal_fsync: bool = Field(
        False, description="fsync the journal before each response: survives power loss, costs a disk flush."
    )
    alias: str = "champion"
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin routes (LOOPML_SERVE__ADMIN_TOKEN); 24+ random chars."
    )
    predict_token: SecretStr | None = Field(
        None, description="When set, the prediction routes need this bearer token too."
    )
    admin_routes: bool | None = Field(
        None, description="Mount the admin routes; default: when an admin token is set."
    )
    shutdown_delay: float = Field(
        0.0, ge=0.0, le=300.0, description="Seconds to answer 503 on readiness after SIGTERM, still serving."
    )

    @field_validator("admin_token", "predict_token", mode="before")
    @classmethod
    def _token_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class MonitorConfig(_Frozen):
    """Monitoring windows and the thresholds that raise alerts."""

    window: str = Field("1d", description="Length of a monitoring window, e.g. 1h, 1d, 7d.")
    psi_threshold: float = Field(0.2, gt=0, description="PSI above which a numeric feature has drifted.")
    js_threshold: float = Field(0.1, gt=0, le=1, description="Jensen-Shannon distance for categoricals.")
    alpha: float = Field(0.05, gt=0, lt=1, description="False discovery rate across the features.")
    min_rows: int = Field(200, ge=1, description="Fewer predictions in a window: no drift verdict.")
    min_labels: int = Field(30, ge=1, description="Fewer labels in a window: no realized metrics.")
    min_positives: int = Field(
        10, ge=1, description="Binary tasks: fewer labelled positives in a window, no realized alert."
    )
    performance_floor: dict[str, float] = Field(default_factory=dict, description="metric -> lowest value.")
    estimated_floor: dict[str, float] = Field(default_factory=dict, description="Same, for the estimate.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _DURATION.fullmatch(value):
            raise ValueError(f"window must look like 1h, 1d or 7d; got {value!r}")
        return value


class GateConfig(_Frozen):
    """What a challenger must show, on the same newest labelled rows, to replace the champion."""

    min_improvement: float = Field(0.005, ge=0, description="In the primary metric's units.")
    segment_tolerance: float = Field(0.05, ge=0, description="No segment may be worse by more.")
    calibration_tolerance: float = Field(0.5, gt=0, description="|mean predicted / observed - 1| at most.")


class RetrainConfig(_Frozen):
    """When to retrain, and how a new model is allowed to serve."""

    schedule: str | None = Field(None, description="Cron expression (UTC), e.g. '0 3 * * *'.")
    drift_features: int = Field(0, ge=0, description="Retrain when this many features drift; 0: off.")
    performance_floor: dict[str, float] = Field(default_factory=dict, description="Realized metric floors.")
    estimated_floor: dict[str, float] = Field(default_factory=dict, description="Estimated metric floors.")
    new_labels: int = Field(0, ge=0, description="Retrain after this many new labels; 0: off.")
    cooldown: str = Field("1d", description="Least time between two cycles.")
    gate: GateConfig = GateConfig()
    refit: bool = Field(
        True,
        description="Serve the challenger refitted on every labelled row, the gate's window included "
        "(the gate judges the fit that never saw that window; the version's metrics record the refit).",
    )
    shadow: str | None = Field(None, description="Score live traffic with the challenger this long first.")
    watch: str = Field("1d", description="After a promotion, roll back automatically if an alarm fires.")
    interval_s: float = Field(60.0, gt=0, description="How often `loopml worker` checks the policy.")

    @field_validator("cooldown", "watch", "shadow")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.fullmatch(value):
            raise ValueError(f"durations look like 30m, 1h, 7d or 2w; got {value!r}")
        return value


ConditionOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in"]
_PREDICTION_FIELDS = (
    "score", "label", "model_name", "model_version", "prediction_id", "origin", "created_at",
)  # fmt: skip
_ALERT_FIELDS = ("kind", "subject", "message", "model_name", "alert_id", "created_at")
_NESTED = {"prediction": ("inputs", "output"), "alert": ("details",)}
_TEMPLATE_REF = re.compile(r"\{([^{}]*)\}")


def action_fields(event: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plain fields and the nested prefixes (``inputs.<col>``) a rule on ``event`` may use."""
    return (_PREDICTION_FIELDS if event == "prediction" else _ALERT_FIELDS), _NESTED[event]


def _check_field(name: str, event: str, where: str) -> None:
    plain, nested = action_fields(event)
    head, dot, rest = name.partition(".")
    if (not dot and name in plain) or (dot and head in nested and rest):
        return
    choices = [*plain, *(f"{p}.<name>" for p in nested)]
    raise ValueError(f"{where}: unknown {event} field '{name}'; {did_you_mean(name, choices)}")


class ConditionConfig(_Frozen):
    """One condition of a rule: ``{field: score, op: ">=", value: 0.5}``.

    Structured data, never evaluated as code. ``threshold: cost_optimal`` instead of ``value``
    compares with the model version's decision threshold (chosen at training to minimise cost).
    """

    field: str = Field(..., min_length=1)
    op: ConditionOp = "=="
    value: Any = None
    threshold: Literal["cost_optimal"] | None = None

    @model_validator(mode="after")
    def _operand(self) -> ConditionConfig:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' needs a list as value, got {self.value!r}")
        if self.threshold is not None and self.op in ("in", "not_in"):
            raise ValueError("a threshold condition needs a comparison op (>=, >, <, <=, ==, !=)")
        return self


class DedupeConfig(_Frozen):
    """At most one action per rendered ``key`` within ``window`` (later ones are kept as suppressed)."""

    key: str = Field(..., min_length=1, description="Template, e.g. '{inputs.card_id}'.")
    window: str = Field("1h", description="e.g. 10m, 1h, 1d.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _DURATION.fullmatch(value):
            raise ValueError(f"durations look like 30m, 1h, 7d or 2w; got {value!r}")
        return value


class RateLimitConfig(_Frozen):
    """At most ``max`` actions of the rule per ``per`` (the excess is recorded as suppressed)."""

    max: int = Field(..., ge=1)
    per: str = Field("1m", description="e.g. 1s, 1m, 1h.")

    @field_validator("per")
    @classmethod
    def _per(cls, value: str) -> str:
        if not _DURATION.fullmatch(value):
            raise ValueError(f"durations look like 30s, 1m, 1h; got {value!r}")
        return value


class ActionRuleConfig(_Frozen):
    """When a prediction (or an alert) matches every condition in ``when``, send ``payload`` to ``endpoint``.

    Payload strings are templates with field references only (``"{inputs.card_id}"``; a string that
    is one reference keeps the value's type); ``{{`` and ``}}`` are literal braces.
    """

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    event: Literal["prediction", "alert"] = "prediction"
    when: list[ConditionConfig] = Field(default_factory=list, description="All must hold; empty: always.")
    endpoint: str
    payload: dict[str, Any] = Field(default_factory=dict, description="Default: every field of the event.")
    dedupe: DedupeConfig | None = None
    rate_limit: RateLimitConfig | None = None

    @model_validator(mode="after")
    def _fields(self) -> ActionRuleConfig:
        where = f"rule '{self.name}'"
        for condition in self.when:
            _check_field(condition.field, self.event, where)
        for template in _templates(self.payload) + ([self.dedupe.key] if self.dedupe else []):
            for ref in _TEMPLATE_REF.findall(template.replace("{{", "").replace("}}", "")):
                _check_field(ref, self.event, where)
        return self


def _templates(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _templates(v)]
    if isinstance(value, list):
        return [t for v in value for t in _templates(v)]
    return []


class EndpointConfig(BaseModel):
    """Where actions go: ``kind`` names the plugin; every other key is that plugin's option."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str = Field(..., description="webhook, sql, redis, rabbitmq, nats, log, or a plugin.")

    @property
    def options(self) -> dict[str, Any]:
        """The plugin's options: every key but ``kind``."""
        return dict(self.model_extra or {})


class ActionsConfig(_Frozen):
    """Predictions and alerts that trigger actions in other systems, through a transactional outbox."""

    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    rules: list[ActionRuleConfig] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Webhook hosts allowed: names, '*.example.com', IPs or CIDRs (IPs/CIDRs also permit "
        "those private addresses).",
    )
    allow_private: bool = Field(False, description="Allow private (10/8, 172.16/12, 192.168/16, fc00::/7).")
    allow_loopback: bool = Field(False, description="Allow 127.0.0.0/8 and ::1 (local development only).")
    max_attempts: int = Field(8, ge=1, description="Attempts before an action is dead (see actions replay).")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each attempt (full jitter).")
    max_backoff_s: float = Field(600.0, gt=0, description="Longest delay between two attempts.")
    lease_s: float = Field(60.0, gt=0, description="Seconds a claim lasts before another worker may retry.")
    batch: int = Field(100, ge=1, description="Actions a dispatcher claims at a time.")
    concurrency: int = Field(4, ge=1, le=64, description="Sends in flight at once (thread-safe plugins).")
    interval_s: float = Field(1.0, gt=0, description="How often `loopml worker` looks for due actions.")

    @model_validator(mode="after")
    def _references(self) -> ActionsConfig:
        names = [rule.name for rule in self.rules]
        for rule in self.rules:
            if rule.endpoint not in self.endpoints:
                raise ValueError(
                    f"rule '{rule.name}' sends to unknown endpoint '{rule.endpoint}'; "
                    f"{did_you_mean(rule.endpoint, self.endpoints) or 'define it under actions.endpoints'}"
                )
            if names.count(rule.name) > 1:
                raise ValueError(f"two rules are named '{rule.name}'; rule names must be unique")
        return self


class ForecastConfig(_Frozen):
    """Demand forecasting (``task: forecast``): which series, how far ahead, how it is backtested.

    The source holds transaction lines; ``target`` is the quantity summed into demand per ``item``
    (and per group of ``group_column``) and per period of ``event_time``.
    """

    item: str = Field(..., description="Column naming the product (one series per item and group).")
    group_column: str | None = Field(None, description="Column splitting each item's demand, e.g. Country.")
    groups: list[str] = Field(
        default_factory=list, description="Values of group_column kept apart; every other value is 'rest'."
    )
    frequency: Literal["W", "D"] = Field("W", description="W: weeks starting Monday; D: days.")
    horizon: int = Field(4, ge=1, le=52, description="Periods ahead forecast from each origin.")
    series_per_group: int = Field(100, ge=1, description="Keep the top series by volume in each group.")
    min_active: int = Field(26, ge=1, description="Least periods with demand for a series to be kept.")
    origins: int = Field(8, ge=1, description="Rolling backtest origins (the newest periods).")
    tuning_origins: int = Field(4, ge=1, description="Earlier origins, before the backtest, for tuning.")
    stock: str | None = Field(
        None, description="CSV of stock on hand (columns item, group, on_hand), relative to the project."
    )


RankingModel = Literal["popularity", "cooccurrence", "als"]
_RANKING_MODELS: tuple[RankingModel, ...] = ("popularity", "cooccurrence", "als")


class RankingConfig(_Frozen):
    """Recommendations (``task: ranking``): purchase lines as implicit feedback of ``user`` x ``item``.

    Evaluated on items new to each user after the time cut: what a user bought before it is neither
    a candidate nor a hit. Unknown users get the most popular items (of their ``segment`` value, e.g.
    Country, when it has enough buyers).
    """

    user: str = Field(..., description="Column naming the customer (rows without one are not used).")
    item: str = Field(..., description="Column naming the product.")
    segment: str | None = Field(None, description="Column for cold-start popularity, e.g. Country.")
    k: int = Field(10, ge=1, le=1000, description="List length: recall@k, NDCG@k, hit rate@k.")
    candidates: list[RankingModel] = Field(
        default_factory=lambda: list(_RANKING_MODELS),
        description="Models fitted and compared; train.model 'auto' keeps the best on validation.",
    )


class RetentionConfig(_Frozen):
    """How long the prediction log keeps records (``loopml predictions prune``, and every worker tick).

    ``None`` keeps them forever. A prediction's feedback goes with it (every reader reaches a label
    through its prediction). Labelled predictions may be kept longer (``labelled``), as training
    and performance data outlive the rest of the log.
    """

    predictions: str | None = Field(None, description="Delete predictions older than this, e.g. 90d.")
    labelled: str | None = Field(
        None, description="Keep predictions that have feedback this long instead (default: as predictions)."
    )
    outbox: str | None = Field(
        None,
        description="Delete finished actions (delivered, dead, suppressed) older than this, e.g. 30d; "
        "pending ones are never deleted, nor any inside a rule's dedupe or rate-limit window.",
    )

    @field_validator("predictions", "labelled", "outbox")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.fullmatch(value):
            raise ValueError(f"durations look like 30d, 12w or 24h; got {value!r}")
        return value


class StoreConfig(_Frozen):
    """Where metadata and artifacts live; defaults sit under ``<project>/.loopml/``."""

    retention: RetentionConfig = RetentionConfig()

    db_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite under .loopml/.")
    artifacts_url: str | None = Field(None, description="Any fsspec URL (s3://bucket/prefix, gs://...).")
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the fsspec filesystem, e.g. {client_kwargs: {endpoint_url: ...}} for S3.",
    )


class MaintenanceConfig(_Frozen):
    """Predictive maintenance: remaining useful life (the project's target) and a failure model.

    The project's own model predicts ``target`` (the RUL, capped at ``rul_cap``); a second, binary
    model named ``failure_model`` (default ``<name>-failure``) predicts ``failure_target``, "fails
    within ``failure_within`` cycles". The maintenance endpoint answers both for one unit's readings.
    """

    rul_cap: int = Field(125, ge=1, description="RUL targets are capped here (early life is flat).")
    failure_within: int = Field(30, ge=1, description="Horizon of the failure label, in cycles.")
    failure_target: str = Field("fails_within_30", description="Binary label column of the failure model.")
    failure_model: str | None = Field(None, description="Registry name of the failure model.")
    alert_probability: float = Field(0.5, gt=0, lt=1, description="Failure probability flagged as alert.")


class Settings(_Frozen):
    """The whole project file."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    task: Literal["binary", "multiclass", "regression", "forecast", "ranking"] = "binary"
    source: SourceConfig
    target: str
    id_column: str | None = None
    event_time: str | None = None
    cleaning: CleaningConfig = CleaningConfig()
    contract: ContractConfig = ContractConfig()
    features: FeaturesConfig = FeaturesConfig()
    train: TrainConfig = TrainConfig()
    serve: ServeConfig = ServeConfig()
    monitor: MonitorConfig = MonitorConfig()
    retrain: RetrainConfig = RetrainConfig()
    actions: ActionsConfig = ActionsConfig()
    forecast: ForecastConfig | None = None
    maintenance: MaintenanceConfig | None = None
    ranking: RankingConfig | None = None
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
            "task": "binary",
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
