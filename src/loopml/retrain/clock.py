"""What "now" is for the retraining policy: the machine's clock, or time in the data.

``retrain.clock: wall`` (the default) measures the cooldown and the schedule on the machine's clock.
``retrain.clock: event`` measures them in event time, so that replaying history, or catching up after
downtime, runs every cycle that falls due in the data instead of skipping them because little wall
time passed: "now" is the newest of the event times among the latest logged predictions (the
traffic scored so far), the newest event time the champion learned from, and the source's watermark
when it is the event-time column. With none of them (no event time, nothing scored or ingested yet)
it is the machine's clock. Every decision and cycle records the time it was taken at on its clock
(``details["clock_at"]``), which the next cooldown and schedule are measured from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from loopml.config import Settings
from loopml.enums import Origin
from loopml.monitor import prediction_times
from loopml.registry import get_alias, get_version
from loopml.retrain.events import Event
from loopml.store import Store, tables, utcnow
from loopml.train.compare import trained_through
from loopml.validate import watermark_state

__all__ = ["clock_at", "clock_now"]

# The latest logged predictions read for the newest event time (a replay or live traffic logs its
# newest events last; older stragglers never move "now" back, since the newest time wins).
_LATEST_PREDICTIONS = 1000


def clock_now(settings: Settings, store: Store) -> datetime:
    """Now on ``retrain.clock`` (timezone-aware UTC)."""
    if settings.retrain.clock == "wall" or settings.event_time is None:
        return utcnow()
    found = [
        t
        for t in (
            _newest_prediction(settings, store),
            _champion_cutoff(settings, store),
            _watermark(settings, store),
        )
        if t is not None
    ]
    return max(found) if found else utcnow()


def clock_at(event: Event, settings: Settings) -> datetime:
    """When ``event`` happened on ``retrain.clock``: its recorded ``clock_at`` on the event clock (its
    wall time when it was recorded before the project moved to event time), else its start."""
    recorded = event.details.get("clock_at") if settings.retrain.clock == "event" else None
    return _aware(pd.Timestamp(recorded)) if recorded else event.started_at


def _aware(value: pd.Timestamp | datetime) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def _newest_prediction(settings: Settings, store: Store) -> datetime | None:
    p = tables.predictions
    query = (
        select(p.c.created_at, p.c.inputs)
        .where(p.c.model_name == settings.name, p.c.origin != Origin.SHADOW)
        .order_by(p.c.id.desc())
        .limit(_LATEST_PREDICTIONS)
    )
    with store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    if not rows:
        return None
    times = prediction_times(pd.DataFrame(rows, columns=["created_at", "inputs"]), settings.event_time)
    newest = times.max()
    return None if pd.isna(newest) else _aware(newest)


def _champion_cutoff(settings: Settings, store: Store) -> datetime | None:
    champion = get_alias(store.engine, settings.name, "champion")
    if champion is None:
        return None
    cutoff = trained_through(get_version(store.engine, settings.name, champion).metrics)
    return None if cutoff is None else _aware(cutoff)


def _watermark(settings: Settings, store: Store) -> datetime | None:
    state: dict[str, Any] | None = watermark_state(store, settings.name)
    if state is None or state["column"] != settings.event_time or state["value"] is None:
        return None
    value = pd.to_datetime(state["value"], errors="coerce", utc=True)
    return None if pd.isna(value) else _aware(value)
