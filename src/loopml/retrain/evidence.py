"""React when the evidence is in: a monitoring alert about the champion, then enough labels of the
traffic since the alert's window started, start a cycle at the next check (``retrain.after_alert_labels``).

An alert (of ``retrain.alert_kinds``: feature drift, concept drift, estimated or realized performance
under its floor) says that the traffic changed or the champion is doing worse; its window's labels
say how, and a challenger can learn the new pattern only from them. Counting starts at the window
the alert is about, so the cycle runs as soon as that evidence has arrived rather than at the next
scheduled check or after a fixed number of labels. Each alert starts one cycle at most: the cycle
records the alert it answers (``details["answers_alert"]``); alerts about windows before the current
champion started serving do not count (they judged its predecessor).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from loopml.config import Settings
from loopml.enums import CycleStatus, EventKind, Origin, TriggerKind
from loopml.monitor import Alert, list_alerts, prediction_times
from loopml.registry import alias_history
from loopml.retrain.clock import clock_at
from loopml.retrain.events import list_events
from loopml.store import Store, tables

__all__ = ["after_alert"]

# An event time up to this far after its prediction was made counts (monitor.prediction_times accepts
# it); so only predictions made since the alert's window began, less this, can lie after it.
_AHEAD = timedelta(days=1)
# The newest alerts read for one still unanswered (an alert older than these is stale evidence anyway).
_ALERTS_READ = 500


def after_alert(
    settings: Settings, store: Store, champion: int | None
) -> tuple[tuple[TriggerKind, str] | None, dict[str, Any]]:
    """The ``after_alert`` trigger's verdict, ``(kind, detail)`` when it fires, and what it saw
    (the alert and the labels counted since its window began) for the decision's record."""
    wanted = settings.retrain.after_alert_labels
    if not wanted or champion is None:
        return None, {}
    alert = _pending_alert(settings, store, champion)
    if alert is None:
        return None, {}
    labels = _labels_since(settings, store, alert.window_start)
    seen = {
        "alert": {"id": alert.id, "kind": str(alert.kind), "window_start": _iso(alert.window_start)},
        "labels_after_alert": labels,
    }
    if labels < wanted:
        return None, seen
    detail = (
        f"{alert.kind.replace('_', ' ')} alert ({alert.message}), then {labels} labels of the traffic "
        f"since {_iso(alert.window_start)} (threshold {wanted})"
    )
    return (TriggerKind.AFTER_ALERT, detail), seen


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _pending_alert(settings: Settings, store: Store, champion: int) -> Alert | None:
    """The oldest alert of ``retrain.alert_kinds`` about the champion's own time that no cycle
    answered yet: the first evidence in is the first answered (a newer alert's labels come later)."""
    cycles = list_events(store.engine, settings.name, EventKind.CYCLE, limit=50)
    answered = max((int(e.details.get("answers_alert") or 0) for e in cycles), default=0)
    promoted = next(
        (e for e in cycles if e.status is CycleStatus.PROMOTED and e.challenger_version == champion), None
    )
    moves = alias_history(store.engine, settings.name, "champion")
    since_move = moves[-1].created_at if moves else None
    kinds = set(settings.retrain.alert_kinds)
    for alert in reversed(list_alerts(store.engine, settings.name, limit=_ALERTS_READ)):
        if alert.id <= answered or str(alert.kind) not in kinds:
            continue
        if promoted is not None:  # its window must start once the champion served (on the policy's clock)
            start = clock_at(promoted, settings)
            if alert.window_start is None or _naive(alert.window_start) < _naive(start):
                continue
        elif since_move is not None and _naive(alert.created_at) < _naive(since_move):
            continue  # promoted by hand: alerts recorded since
        return alert
    return None


def _naive(value: datetime) -> datetime:
    """UTC without a zone (alerts' windows are naive UTC, recorded times may carry the zone)."""
    return (
        value
        if value.tzinfo is None
        else pd.Timestamp(value).tz_convert("UTC").tz_localize(None).to_pydatetime()
    )


def _labels_since(settings: Settings, store: Store, start: datetime | None) -> int:
    """Labelled predictions whose time (event time, else when made) is at or after ``start``."""
    p, f = tables.predictions, tables.feedback
    query = (
        select(
            p.c.id,
            p.c.created_at,
            p.c.inputs[settings.event_time].as_string() if settings.event_time else func.null(),
        )
        .select_from(p.join(f, f.c.prediction_id == p.c.id))
        .where(p.c.model_name == settings.name, p.c.origin != Origin.SHADOW)
        .distinct()
    )
    if start is not None:
        query = query.where(p.c.created_at >= _naive(start).replace(tzinfo=UTC) - _AHEAD)
    with store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    if not rows or start is None:
        return len(rows)
    frame = pd.DataFrame(rows, columns=["id", "created_at", "time"])
    key = settings.event_time or "time"
    frame["inputs"] = pd.Series([{key: t} for t in frame["time"]], index=frame.index, dtype=object)
    times = prediction_times(frame, settings.event_time)
    return int((times >= pd.Timestamp(_naive(start))).sum())
