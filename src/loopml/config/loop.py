"""Serving and loop sections of the project file: serve, monitor, retrain and its gate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from loopml._cron import cron_zone, normalize
from loopml.config._base import (
    Duration,
    _Frozen,
)

# The route groups that serve.public_routes may open (health is always public).
PublicRouteGroup = Literal["health", "metrics", "docs", "v2_metadata", "dashboard"]


class ServeConfig(_Frozen):
    """The prediction API."""

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 for every interface.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    max_batch: int = Field(1000, ge=1, description="Most records in one request (more: 413).")
    max_body_bytes: int = Field(5_000_000, ge=1024, description="Largest request body (more: 413).")
    log_predictions: bool = Field(True, description="Log every prediction (needed by monitoring).")
    journal_dir: str | None = Field(
        None,
        description="Folder of the crash journal of logged predictions (default <project>/.loopml/journal); "
        "keep it on a disk that outlives the process.",
        examples=["/var/lib/loopml/journal"],
    )
    journal_fsync: bool = Field(
        False, description="fsync the journal before each response: survives power loss, costs a disk flush."
    )
    online_store: str | None = Field(
        None,
        description="Where the online state of window features lives (LOOPML_ONLINE_URL): unset, in "
        "each API process, warmed from the store (exact for one replica); redis://HOST:PORT/DB, one "
        "state in Redis shared by every replica and by batch scoring run online. Set it as soon as "
        "two replicas serve a model with window features.",
        examples=["redis://redis:6379/0"],
    )
    alias: str = Field("champion", description="The alias whose version is served.")
    extra_fields: Literal["reject", "ignore"] = Field(
        "reject",
        description="A predict request's field that is no column of the data contract: reject (422 "
        "naming the field) or ignore it.",
        examples=["ignore"],
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of the admin routes (LOOPML_SERVE__ADMIN_TOKEN); 24+ random chars.",
        examples=["<secrets.token_urlsafe(32)>"],
    )
    predict_token: SecretStr | None = Field(
        None,
        description="When set, the prediction routes need this bearer token too.",
        examples=["<secrets.token_urlsafe(32)>"],
    )
    admin_routes: bool | None = Field(
        None, description="Mount the admin routes; default: when an admin token is set."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="A bearer token that opens /metrics only (for a Prometheus scraper); the predict and "
        "admin tokens open it too.",
        examples=["<secrets.token_urlsafe(32)>"],
    )
    public_routes: list[PublicRouteGroup] | None = Field(
        None,
        description="Route groups that need no token: health (always), metrics, docs (/docs, /redoc, "
        "/openapi.json), v2_metadata, dashboard. Unset: every group when no token is set, else health "
        "only; a group not listed needs the predict or admin token (metrics: the metrics token too).",
        examples=[["health", "metrics"]],
    )
    body_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds a request body may take to arrive (more: 408, and the connection is closed).",
    )
    max_connections_per_client: int = Field(
        100,
        ge=0,
        description="Open connections one client address may hold (more are refused with 429); 0: no "
        "limit. Raise it behind a proxy, which is one client.",
    )
    shutdown_delay: float = Field(
        0.0, ge=0.0, le=300.0, description="Seconds to answer 503 on readiness after SIGTERM, still serving."
    )

    @field_validator("online_store")
    @classmethod
    def _online_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be a Redis URL (redis://, rediss:// or unix://), got '{value}'")
        return value

    @field_validator("admin_token", "predict_token", "metrics_token", mode="before")
    @classmethod
    def _token_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class MonitorConfig(_Frozen):
    """Monitoring windows and the thresholds that raise alerts."""

    window: Duration = Field("1d", description="Length of a monitoring window, e.g. 1h, 1d, 7d.")
    psi_threshold: float = Field(
        0.25,
        gt=0,
        description="PSI above which a numeric feature has drifted (an alert; from 0.1 a significant shift "
        "is a warning).",
    )
    js_threshold: float = Field(0.1, gt=0, le=1, description="Jensen-Shannon distance for categoricals.")
    alpha: float = Field(0.05, gt=0, lt=1, description="False discovery rate across the features.")
    min_rows: int = Field(200, ge=1, description="Fewer predictions in a window: no drift verdict.")
    min_labels: int = Field(30, ge=1, description="Fewer labels in a window: no realized metrics.")
    min_positives: int = Field(
        10, ge=1, description="Binary tasks: fewer labelled positives in a window, no realized alert."
    )
    performance_floor: dict[str, float] = Field(
        default_factory=dict, description="metric -> lowest value.", examples=[{"average_precision": 0.5}]
    )
    estimated_floor: dict[str, float] = Field(
        default_factory=dict, description="Same, for the estimate.", examples=[{"roc_auc": 0.8}]
    )


# The monitoring alerts that can start a cycle once their evidence is in (retrain.after_alert_labels).
AlertTrigger = Literal["drift", "concept_drift", "estimated_performance", "performance"]
_ALERT_TRIGGERS: tuple[AlertTrigger, ...] = ("drift", "concept_drift", "estimated_performance", "performance")


class GateConfig(_Frozen):
    """What a challenger must show to replace the champion, judged on rows neither has learned from:
    those newer than everything the champion was trained on (the challenger's judged fit learns
    from the older ones). Both models are scored on the same rows; the gain is judged with a paired
    bootstrap interval, and every other check compares the two as well."""

    min_improvement: float = Field(
        0.0,
        ge=0,
        description="Expected gain over the champion (the mean of the paired bootstrap, in the primary "
        "metric's units) the challenger needs; 0: not worse in expectation (its refit learnt newer rows).",
    )
    tolerance: float = Field(
        0.01,
        ge=0,
        description="How much worse than the champion the low end of the interval of the gain may "
        "reach: promoted only when the challenger is not worse by more than this (retrain.gate.confidence).",
    )
    confidence: float = Field(
        0.9, gt=0, lt=1, description="Level of the paired bootstrap interval of the gain (two-sided)."
    )
    ties: Literal["newer", "champion"] = Field(
        "newer",
        description="Who wins when the gain's interval reaches 0 but its mean does not (no evidence "
        "either way): newer promotes the challenger, whose served refit learnt rows the champion never "
        "saw; champion keeps the champion until the challenger is not worse in expectation. A "
        "min_improvement above 0 must be reached in expectation either way.",
    )
    bootstrap: int = Field(
        200, ge=0, description="Resamples of the paired bootstrap; 0: judge on the gain on all rows alone."
    )
    min_rows: int = Field(
        300,
        ge=1,
        description="Fewest rows newer than the champion's training data the gate judges on; fewer: a "
        "due cycle waits for more data (and says so) instead of comparing on rows the champion has seen.",
    )
    unseen_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Of the rows newer than the champion's training data, the newest share is the gate's "
        "holdout (at most train.holdout_fraction of all rows); the challenger's judged fit learns the rest. "
        "1: it learns no row newer than the champion's (a change of settings judged on the same rows).",
    )
    segment_tolerance: float = Field(
        0.05,
        ge=0,
        description="No segment (train.segments) may be worse than the champion's on the same rows by more.",
    )
    calibration_margin: float = Field(
        0.1,
        ge=0,
        description="Binary tasks: the challenger's |mean predicted / observed - 1| on the gate's rows may "
        "exceed the champion's on the same rows by at most this.",
    )
    calibration_tolerance: float | None = Field(
        None,
        gt=0,
        description="Optional absolute floor: |mean predicted / observed - 1| at most this, unless the "
        "challenger is still no worse than the champion (a check never keeps the model that fails it "
        "worse). Unset: off.",
        examples=[0.5],
    )
    latency_tolerance: float = Field(
        1.0,
        ge=0,
        description="The challenger's time to score a row (in a batch of the gate's rows) may be at most "
        "(1 + this) times the champion's.",
    )
    latency_slack_us: float = Field(
        100.0,
        ge=0,
        description="A challenger at most this many microseconds per row slower than the champion passes "
        "the latency check whatever the ratio (a batch's time per row is far under one request's overhead, "
        "and a busy machine doubles it now and then).",
    )
    max_latency_us: float | None = Field(
        None,
        gt=0,
        description="Optional absolute floor: the challenger's time to score a row, in microseconds, at "
        "most this, unless it is no slower than the champion. Unset: off.",
        examples=[200.0],
    )


class RetrainConfig(_Frozen):
    """When to retrain, and how a new model is allowed to serve."""

    schedule: str | None = Field(
        None,
        description="Cron expression in retrain.timezone, e.g. '0 3 * * *': 5 fields (minute hour "
        "day-of-month month day-of-week) with names (MON, JAN) and 7 for Sunday, or @hourly, @daily, "
        "@weekly, @monthly, @yearly. Both day fields restricted: either day matches, as in Vixie cron.",
        examples=["0 3 * * *", "@daily", "0 9 * * MON-FRI"],
    )
    timezone: str = Field(
        "UTC",
        description="Time zone the schedule is read in (an IANA name); daylight-saving changes are "
        "handled as cron does.",
        examples=["Europe/Berlin"],
    )
    drift_features: int = Field(0, ge=0, description="Retrain when this many features drift; 0: off.")
    performance_floor: dict[str, float] = Field(
        default_factory=dict, description="Realized metric floors.", examples=[{"average_precision": 0.5}]
    )
    estimated_floor: dict[str, float] = Field(
        default_factory=dict, description="Estimated metric floors.", examples=[{"roc_auc": 0.8}]
    )
    new_labels: int = Field(0, ge=0, description="Retrain after this many new labels; 0: off.")
    after_alert_labels: int = Field(
        0,
        ge=0,
        description="Retrain once this many labels have arrived for the traffic since a monitoring alert "
        "(retrain.alert_kinds) about the champion's window, without waiting for another trigger; 0: off.",
        examples=[1000],
    )
    alert_kinds: list[AlertTrigger] = Field(
        default_factory=lambda: list(_ALERT_TRIGGERS),
        description="The alerts retrain.after_alert_labels reacts to.",
    )
    cooldown: Duration = Field(
        "1d", description="Least time between two cycles, on retrain.clock: a due cycle inside it is skipped."
    )
    clock: Literal["wall", "event"] = Field(
        "wall",
        description="What the cooldown and the schedule measure: wall (the machine's clock) or event "
        "(time in the data: the newest event time among the latest logged predictions, the data the "
        "champion learned from and the source's watermark): for replays and catching up after downtime.",
        examples=["event"],
    )
    gate: GateConfig = Field(GateConfig(), description="What a challenger must show to be promoted.")
    refit: bool = Field(
        True,
        description="Serve the challenger refitted on every labelled row, the gate's window included "
        "(the gate judges the fit that never saw that window; the version's metrics record the refit).",
    )
    train_window: Duration | None = Field(
        None,
        description="A challenger learns from the newest rows only, e.g. 35d (train.window for cycles): "
        "after a regime change, old rows no longer dilute the new pattern. Default: train.window.",
        examples=["28d"],
    )
    shadow: Duration | None = Field(
        None, description="Score live traffic with the challenger this long first.", examples=["1d"]
    )
    watch: Duration = Field("1d", description="After a promotion, roll back automatically if an alarm fires.")
    interval_s: float = Field(60.0, gt=0, description="How often `loopml worker` checks the policy.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            normalize(value)  # a ValueError saying what is wrong; pydantic names the key
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        cron_zone(value)
        return value
