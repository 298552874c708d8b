"""Serving and loop sections of the project file: serve, monitor, retrain and its gate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from loopml.config._base import (
    Duration,
    _Frozen,
)


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
    shutdown_delay: float = Field(
        0.0, ge=0.0, le=300.0, description="Seconds to answer 503 on readiness after SIGTERM, still serving."
    )

    @field_validator("admin_token", "predict_token", mode="before")
    @classmethod
    def _token_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class MonitorConfig(_Frozen):
    """Monitoring windows and the thresholds that raise alerts."""

    window: Duration = Field("1d", description="Length of a monitoring window, e.g. 1h, 1d, 7d.")
    psi_threshold: float = Field(0.2, gt=0, description="PSI above which a numeric feature has drifted.")
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


class GateConfig(_Frozen):
    """What a challenger must show, on the same newest labelled rows, to replace the champion."""

    min_improvement: float = Field(0.005, ge=0, description="In the primary metric's units.")
    segment_tolerance: float = Field(0.05, ge=0, description="No segment may be worse by more.")
    calibration_tolerance: float = Field(0.5, gt=0, description="|mean predicted / observed - 1| at most.")


class RetrainConfig(_Frozen):
    """When to retrain, and how a new model is allowed to serve."""

    schedule: str | None = Field(
        None, description="Cron expression (UTC), e.g. '0 3 * * *'.", examples=["0 3 * * *"]
    )
    drift_features: int = Field(0, ge=0, description="Retrain when this many features drift; 0: off.")
    performance_floor: dict[str, float] = Field(
        default_factory=dict, description="Realized metric floors.", examples=[{"average_precision": 0.5}]
    )
    estimated_floor: dict[str, float] = Field(
        default_factory=dict, description="Estimated metric floors.", examples=[{"roc_auc": 0.8}]
    )
    new_labels: int = Field(0, ge=0, description="Retrain after this many new labels; 0: off.")
    cooldown: Duration = Field("1d", description="Least time between two cycles.")
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
