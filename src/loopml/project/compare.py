"""Two model versions side by side: what the dashboard's model page shows (``project.models.compare``).

Everything comes from what each version recorded at training (holdout metrics with their bootstrap
intervals, thinned curves or binned residuals, top features, the data set version) and from the
retraining loop's events (the gate's verdict on a challenger); nothing is loaded or scored, so the
page is as quick for a large model as for a small one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from loopml.enums import EventKind
from loopml.registry import ModelVersion, resolve
from loopml.retrain import list_events

__all__ = ["VersionComparison", "VersionSide", "compare_versions"]


@dataclass(frozen=True)
class VersionSide:
    """One version as compared: its holdout metrics and 95% intervals, curves, top features,
    training data, and the gate's verdict (None when no retraining cycle judged it)."""

    version: int
    aliases: list[str]
    created_at: str
    metric: str | None
    score: float | None
    holdout: dict[str, float]
    holdout_ci: dict[str, list[float]]
    rows_train: int | None
    rows_holdout: int | None
    dataset_version: int | None
    holdout_start: str | None
    curves: dict[str, Any]
    top_features: dict[str, float]
    top_features_kind: str
    gate: dict[str, Any] | None = None
    report: str | None = None


@dataclass(frozen=True)
class VersionComparison:
    """Versions ``a`` and ``b`` of ``model`` side by side; ``metrics``: every holdout metric of either."""

    model: str
    task: str
    a: VersionSide
    b: VersionSide
    metrics: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate(engine: Engine, name: str, version: int) -> dict[str, Any] | None:
    """The newest retraining cycle that trained ``version`` as its challenger: its decision and why."""
    for event in list_events(engine, name, kind=EventKind.CYCLE, limit=500):
        if event.challenger_version == version:
            return {
                "at": str(event.started_at)[:19],
                "status": str(event.status),
                "decision": event.decision,
                "reasons": list(event.reasons),
            }
    return None


def _side(engine: Engine, v: ModelVersion) -> VersionSide:
    m = v.metrics
    importance = m.get("top_features") or {}
    return VersionSide(
        version=v.version,
        aliases=list(v.aliases),
        created_at=str(v.created_at)[:19],
        metric=m.get("metric"),
        score=m.get("score"),
        holdout=dict(m.get("holdout") or {}),
        holdout_ci=dict(m.get("holdout_ci") or {}),
        rows_train=m.get("rows_train"),
        rows_holdout=m.get("rows_holdout"),
        dataset_version=m.get("dataset_version"),
        holdout_start=m.get("holdout_start"),
        curves=dict(m.get("curves") or {}),
        top_features={str(k): float(x) for k, x in importance.items()},
        top_features_kind=str(m.get("top_features_kind") or ""),
        gate=_gate(engine, v.name, v.version),
        report=m.get("report"),
    )


def compare_versions(engine: Engine, name: str, a: str | int, b: str | int) -> VersionComparison:
    """Versions ``a`` and ``b`` (numbers or aliases) of model ``name`` side by side."""
    va, vb = resolve(engine, name, a), resolve(engine, name, b)
    left, right = _side(engine, va), _side(engine, vb)
    metrics = list(dict.fromkeys([*left.holdout, *right.holdout]))
    return VersionComparison(name, str(va.task), left, right, metrics)
