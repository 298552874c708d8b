"""When to retrain: triggers from loopml.yaml, a cooldown, and every evaluation recorded.

The cooldown and the schedule are measured on ``retrain.clock`` (:mod:`loopml.retrain.clock`): the
machine's clock, or event time for replays and catching up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from loopml.actions import enqueue_for_alerts
from loopml.config import Settings
from loopml.enums import CycleStatus, EventKind, TriggerKind
from loopml.features import parse_duration
from loopml.monitor import MonitorReport, run_monitor
from loopml.registry import get_alias
from loopml.retrain.clock import clock_at, clock_now
from loopml.retrain.cron import cron_due
from loopml.retrain.events import OPEN, labels_since, last_event, start_event
from loopml.retrain.evidence import after_alert
from loopml.retrain.perf import own_performance
from loopml.store import Store

__all__ = ["TRIGGER_KEYS", "Decision", "Trigger", "configured_triggers", "decide"]

# The cycles that ran to the end: the last one starts the count of new labels.
FINISHED = (CycleStatus.PROMOTED, CycleStatus.REJECTED, CycleStatus.FAILED)

# The keys of ``retrain:`` in loopml.yaml that set a trigger (at their defaults, 0 or empty, none is set).
TRIGGER_KEYS = (
    "drift_features",
    "performance_floor",
    "estimated_floor",
    "new_labels",
    "after_alert_labels",
    "schedule",
)
NO_TRIGGER = (
    f"no trigger is configured: retrain: in loopml.yaml sets none of {', '.join(TRIGGER_KEYS)}, so a "
    "cycle runs only when forced (`loopml retrain --force`). To retrain by itself, set one, e.g. "
    "new_labels: 1000, drift_features: 3, performance_floor: {average_precision: 0.5} or "
    "schedule: '0 3 * * *'."
)


@dataclass(frozen=True)
class Trigger:
    """One reason to retrain: its kind and what was seen."""

    kind: TriggerKind
    detail: str


@dataclass(frozen=True)
class Decision:
    """Whether to retrain now, why (each trigger that fired), and the inputs the decision was made on."""

    retrain: bool
    triggers: list[Trigger]
    inputs: dict[str, Any] = field(default_factory=dict)
    blocked_by: str | None = None
    configured: tuple[str, ...] = ()  # the trigger keys set in loopml.yaml (see TRIGGER_KEYS)
    event_id: int | None = None  # its record in retrain_events (None when not recorded: a dry run)

    @property
    def hint(self) -> str | None:
        """What to set in loopml.yaml when no trigger is configured (the policy can never fire)."""
        return None if self.configured else NO_TRIGGER

    @property
    def reasons(self) -> list[str]:
        """Each trigger's detail, as the decision's record and output give them."""
        return [t.detail for t in self.triggers]

    @property
    def skipped_because(self) -> str | None:
        """Why no cycle runs on this decision (None when one does)."""
        if self.retrain:
            return None
        if self.blocked_by:
            return f"held back by the {self.blocked_by}"
        return "no trigger fired" if self.configured else "no trigger is configured"


def configured_triggers(settings: Settings) -> tuple[str, ...]:
    """The ``retrain:`` keys of :data:`TRIGGER_KEYS` that are set: none means that only a forced
    cycle (``loopml retrain --force``) ever runs."""
    return tuple(key for key in TRIGGER_KEYS if getattr(settings.retrain, key))


def _floors(kind: TriggerKind, values: dict[str, Any], floors: dict[str, float], label: str) -> list[Trigger]:
    found = []
    for metric, floor in floors.items():
        value = values.get(metric)
        if value is not None and np.isfinite(value) and value < floor:
            found.append(Trigger(kind, f"{label} {metric} {value:.4f} is under {floor}"))
    return found


def _triggers(
    settings: Settings, store: Store, report: MonitorReport | None, now: datetime
) -> tuple[list[Trigger], dict[str, Any]]:
    cfg = settings.retrain
    last_cycle = last_event(store.engine, settings.name, EventKind.CYCLE, FINISHED)
    since = last_cycle.started_at if last_cycle else None
    reasons: list[Trigger] = []
    inputs: dict[str, Any] = {"last_cycle": since}
    if report is not None:
        inputs.update(
            drifted=report.drifted_features,
            realized=report.performance.get("realized"),
            estimated=report.estimated_performance,
            window=report.window,
        )
        if cfg.drift_features and len(report.drifted_features) >= cfg.drift_features:
            drifted = report.drifted_features
            reasons.append(
                Trigger(TriggerKind.DRIFT, f"{len(drifted)} feature(s) drifted: {', '.join(drifted[:5])}")
            )
        reasons += _floors(
            TriggerKind.ESTIMATED_FLOOR, report.estimated_performance, cfg.estimated_floor, "estimated"
        )
    champion = get_alias(store.engine, settings.name, "champion")
    if champion is not None and cfg.performance_floor:  # judged on the champion's own predictions
        own = own_performance(settings, store, champion)
        inputs.update(realized=own["realized"], realized_window=own["window_start"])
        label = f"realized (v{champion}, window {own['window_start']:%Y-%m-%d})" if own["realized"] else ""
        reasons += _floors(TriggerKind.PERFORMANCE_FLOOR, own["realized"] or {}, cfg.performance_floor, label)
    if cfg.new_labels:
        fresh = labels_since(store.engine, settings.name, since)
        inputs["new_labels"] = fresh
        if fresh >= cfg.new_labels:
            reasons.append(
                Trigger(TriggerKind.NEW_LABELS, f"{fresh} new labels (threshold {cfg.new_labels})")
            )
    fired, seen = after_alert(settings, store, champion)
    inputs.update(seen)
    if fired is not None:
        reasons.append(Trigger(*fired))
    if cfg.schedule:
        last_check = last_event(store.engine, settings.name, EventKind.DECISION)
        since = clock_at(last_check, settings) if last_check else None
        if cron_due(cfg.schedule, since, now, cfg.timezone):
            reasons.append(Trigger(TriggerKind.SCHEDULE, f"schedule '{cfg.schedule}' is due"))
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

    ``now``: the time on ``retrain.clock`` (by default read from it: :func:`~loopml.retrain.clock.clock_now`);
    ``report``: the champion's monitoring pass when the caller already ran it (one pass per tick).
    """
    now = now or clock_now(settings, store)
    champion = get_alias(store.engine, settings.name, "champion")
    if champion and (report is None or report.model_version != champion):
        report = run_monitor(
            store,
            settings.name,
            settings.monitor,
            record=record,
            on_alert=enqueue_for_alerts(settings.actions),
        )
    triggers, inputs = _triggers(settings, store, report, now)
    inputs.update(clock=settings.retrain.clock, clock_at=now)
    if champion is None:
        triggers.append(Trigger(TriggerKind.NO_CHAMPION, "there is no champion yet"))
    blocked = None
    last_cycle = last_event(store.engine, settings.name, EventKind.CYCLE, (*FINISHED, *OPEN))
    cooldown = timedelta(milliseconds=parse_duration(settings.retrain.cooldown))
    if triggers and last_cycle and clock_at(last_cycle, settings) + cooldown > now:
        started = f"{clock_at(last_cycle, settings):%Y-%m-%d %H:%M}"
        blocked = (
            f"cooldown: the last cycle started at {started} ({settings.retrain.clock} clock, cooldown "
            f"{settings.retrain.cooldown}, now {now:%Y-%m-%d %H:%M})"
        )
    decision = Decision(
        bool(triggers) and blocked is None, triggers, inputs, blocked, configured_triggers(settings)
    )
    if record:
        recorded = start_event(
            store.engine,
            settings.name,
            EventKind.DECISION,
            status=CycleStatus.DONE,
            decision=decision.retrain,
            reasons=decision.reasons + ([blocked] if blocked else []),
            details=_jsonable(inputs),
        )
        decision = replace(decision, event_id=recorded)
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
