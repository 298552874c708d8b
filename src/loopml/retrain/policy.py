"""When to retrain: triggers from loopml.yaml, a cooldown, and every evaluation recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from loopml.actions import enqueue_for_alerts
from loopml.config import Settings
from loopml.features import parse_duration
from loopml.monitor import MonitorReport, run_monitor
from loopml.registry import get_alias
from loopml.retrain.cron import cron_due
from loopml.retrain.events import OPEN, labels_since, last_event, start_event
from loopml.retrain.perf import own_performance
from loopml.store import Store, utcnow

__all__ = ["Decision", "decide"]


@dataclass(frozen=True)
class Decision:
    """Whether to retrain now, why, and the inputs the decision was made on."""

    retrain: bool
    reasons: list[str]
    inputs: dict[str, Any] = field(default_factory=dict)
    blocked_by: str | None = None


def _floors(values: dict[str, Any], floors: dict[str, float], label: str) -> list[str]:
    found = []
    for metric, floor in floors.items():
        value = values.get(metric)
        if value is not None and np.isfinite(value) and value < floor:
            found.append(f"{label} {metric} {value:.4f} is under {floor}")
    return found


def _triggers(
    settings: Settings, store: Store, report: MonitorReport | None, now: datetime
) -> tuple[list[str], dict[str, Any]]:
    cfg = settings.retrain
    last_cycle = last_event(store.engine, settings.name, "cycle", ("promoted", "rejected", "failed"))
    since = last_cycle.started_at if last_cycle else None
    reasons: list[str] = []
    inputs: dict[str, Any] = {"last_cycle": since}
    if report is not None:
        inputs.update(
            drifted=report.drifted_features,
            realized=report.performance.get("realized"),
            estimated=report.estimated_performance,
            window=report.window,
        )
        if cfg.drift_features and len(report.drifted_features) >= cfg.drift_features:
            reasons.append(
                f"{len(report.drifted_features)} feature(s) drifted: {', '.join(report.drifted_features[:5])}"
            )
        reasons += _floors(report.estimated_performance, cfg.estimated_floor, "estimated")
    champion = get_alias(store.engine, settings.name, "champion")
    if champion is not None and cfg.performance_floor:  # judged on the champion's own predictions
        own = own_performance(settings, store, champion)
        inputs.update(realized=own["realized"], realized_window=own["window_start"])
        label = f"realized (v{champion}, window {own['window_start']:%Y-%m-%d})" if own["realized"] else ""
        reasons += _floors(own["realized"] or {}, cfg.performance_floor, label)
    if cfg.new_labels:
        fresh = labels_since(store.engine, settings.name, since)
        inputs["new_labels"] = fresh
        if fresh >= cfg.new_labels:
            reasons.append(f"{fresh} new labels (threshold {cfg.new_labels})")
    if cfg.schedule:
        last_check = last_event(store.engine, settings.name, "decision")
        if cron_due(cfg.schedule, last_check.started_at if last_check else None, now):
            reasons.append(f"schedule '{cfg.schedule}' is due")
    return reasons, inputs


def decide(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None = None,
    record: bool = True,
    report: MonitorReport | None = None,
) -> Decision:
    """Evaluate every trigger; a positive decision inside the cooldown is held back (and says so).

    ``report``: the champion's monitoring pass when the caller already ran it (one pass per tick).
    """
    now = now or utcnow()
    champion = get_alias(store.engine, settings.name, "champion")
    if champion and (report is None or report.model_version != champion):
        report = run_monitor(
            store, settings.name, settings.monitor, record=record, on_alert=enqueue_for_alerts(settings)
        )
    reasons, inputs = _triggers(settings, store, report, now)
    if champion is None:
        reasons.append("there is no champion yet")
    blocked = None
    last_cycle = last_event(store.engine, settings.name, "cycle", ("promoted", "rejected", "failed", *OPEN))
    cooldown = timedelta(milliseconds=parse_duration(settings.retrain.cooldown))
    if reasons and last_cycle and last_cycle.started_at + cooldown > now:
        started = f"{last_cycle.started_at:%Y-%m-%d %H:%M}"
        blocked = f"cooldown: the last cycle started at {started} (cooldown {settings.retrain.cooldown})"
    decision = Decision(bool(reasons) and blocked is None, reasons, inputs, blocked)
    if record:
        start_event(
            store.engine,
            settings.name,
            "decision",
            status="done",
            decision=decision.retrain,
            reasons=reasons + ([blocked] if blocked else []),
            details=_jsonable(inputs),
        )
    return decision


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
