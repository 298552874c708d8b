"""Recorded retraining events: every policy decision and every cycle, with inputs and outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from loopml.enums import CycleStatus, EventKind
from loopml.store import tables, utcnow

__all__ = [
    "OPEN",
    "TERMINAL",
    "Event",
    "finish_event",
    "get_event",
    "labels_since",
    "last_event",
    "list_events",
    "note_decision",
    "start_event",
    "transition",
]

# A cycle's states: running (ingesting, training) -> trained -> [shadowing] -> promoted | rejected,
# or failed / abandoned. Each move is one recorded transition; the open ones are resumed or abandoned.
OPEN = (CycleStatus.RUNNING, CycleStatus.TRAINED, CycleStatus.SHADOWING)
TERMINAL = (CycleStatus.PROMOTED, CycleStatus.REJECTED, CycleStatus.FAILED, CycleStatus.ABANDONED)


@dataclass(frozen=True)
class Event:
    """One row of ``retrain_events``."""

    id: int
    kind: EventKind
    status: CycleStatus
    decision: bool | None
    reasons: list[str]
    details: dict[str, Any]
    challenger_version: int | None
    started_at: datetime
    finished_at: datetime | None


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _event(row: Any) -> Event:
    return Event(
        row.id,
        EventKind(row.kind),
        CycleStatus(row.status),
        row.decision,
        row.reasons,
        row.details,
        row.challenger_version,
        _aware(row.started_at) or row.started_at,
        _aware(row.finished_at),
    )


def start_event(
    engine: Engine,
    model: str,
    kind: EventKind,
    *,
    status: CycleStatus = CycleStatus.RUNNING,
    decision: bool | None = None,
    reasons: list[str] | None = None,
    details: dict[str, Any] | None = None,
    conn: Connection | None = None,
) -> int:
    """Record the start of a decision or a cycle (in ``conn``'s transaction when given); returns its id."""
    e = tables.retrain_events
    row = {
        "model_name": model,
        "kind": kind,
        "status": status,
        "decision": decision,
        "reasons": reasons or [],
        "details": details or {},
        "started_at": utcnow(),
        "finished_at": utcnow() if status != CycleStatus.RUNNING else None,
    }
    if conn is not None:
        return int(conn.execute(insert(e).returning(e.c.id), row).scalar_one())
    with engine.begin() as own:
        return int(own.execute(insert(e).returning(e.c.id), row).scalar_one())


def finish_event(engine: Engine, event_id: int, status: CycleStatus, **values: Any) -> None:
    """Close an event with its status and any of decision, reasons, details, challenger_version."""
    e = tables.retrain_events
    with engine.begin() as conn:
        conn.execute(
            update(e).where(e.c.id == event_id).values(status=status, finished_at=utcnow(), **values)
        )


def note_decision(engine: Engine, event_id: int | None, note: str) -> None:
    """Add ``note`` to a recorded decision's reasons (why it ran no cycle after all: a cycle that waits)."""
    if event_id is None:
        return
    e = tables.retrain_events
    with engine.begin() as conn:
        row = conn.execute(select(e.c.reasons, e.c.details).where(e.c.id == event_id)).first()
        if row is not None:
            details = {**(row.details or {}), "waiting": note}
            reasons = [*row.reasons, note]
            conn.execute(update(e).where(e.c.id == event_id).values(reasons=reasons, details=details))


def transition(
    conn: Connection,
    event_id: int,
    status: CycleStatus,
    *,
    expect: tuple[CycleStatus, ...] = OPEN,
    details: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    """Move a cycle to ``status`` inside the caller's transaction, if it is still in one of ``expect``.

    ``details`` are merged into the event's; the move is appended to ``details["steps"]``. Returns
    False (and changes nothing) when the event had already moved on, e.g. another worker resumed it.
    """
    e = tables.retrain_events
    row = conn.execute(select(e.c.status, e.c.details).where(e.c.id == event_id)).first()
    if row is None or row.status not in expect:
        return False
    now = utcnow()
    merged = {**(row.details or {}), **(details or {})}
    merged["steps"] = [*merged.get("steps", []), {"status": status, "at": now.isoformat()}]
    if status in TERMINAL:
        values["finished_at"] = now
    result = conn.execute(
        update(e)
        .where(e.c.id == event_id, e.c.status == row.status)
        .values(status=status, details=merged, **values)
    )
    return bool(result.rowcount)


def get_event(engine: Engine, event_id: int) -> Event:
    """One event by id."""
    e = tables.retrain_events
    with engine.connect() as conn:
        return _event(conn.execute(select(e).where(e.c.id == event_id)).one())


def last_event(
    engine: Engine, model: str, kind: EventKind, statuses: tuple[CycleStatus, ...] | None = None
) -> Event | None:
    """The most recent event of ``kind`` (optionally with one of ``statuses``)."""
    e = tables.retrain_events
    query = select(e).where(e.c.model_name == model, e.c.kind == kind)
    if statuses:
        query = query.where(e.c.status.in_(statuses))
    with engine.connect() as conn:
        row = conn.execute(query.order_by(e.c.started_at.desc(), e.c.id.desc()).limit(1)).first()
    return _event(row) if row else None


def list_events(engine: Engine, model: str, kind: EventKind | None = None, limit: int = 100) -> list[Event]:
    """Recent events, newest first."""
    e = tables.retrain_events
    query = select(e).where(e.c.model_name == model)
    if kind:
        query = query.where(e.c.kind == kind)
    with engine.connect() as conn:
        return [_event(r) for r in conn.execute(query.order_by(e.c.id.desc()).limit(limit))]


def labels_since(engine: Engine, model: str, since: datetime | None) -> int:
    """Labels received for this model's predictions since ``since`` (all when None)."""
    f, p = tables.feedback, tables.predictions
    query = (
        select(func.count())
        .select_from(f.join(p, p.c.id == f.c.prediction_id))
        .where(p.c.model_name == model)
    )
    if since is not None:
        query = query.where(f.c.received_at > since)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
