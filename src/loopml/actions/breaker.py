"""Per-endpoint circuit breakers, kept in the store (``action_endpoints``) so that every dispatcher
(batches, restarts, several workers) sees the same state.

An endpoint is *up* until a delivery to it fails for a reason worth retrying (unreachable, timeout,
5xx, 408, 425, 429). It is then *down* (``down_since`` set): its actions are not claimed, except one
probe at a time, the endpoint's oldest pending action, when ``next_probe_at`` comes (the retry
schedule of ``actions`` applied to the endpoint's consecutive failures). The probe's success, or any
answer that shows the endpoint is there (a permanent 4xx, a 410), brings it up again and its actions
flow, oldest first. Taking the probe slot is one conditional ``UPDATE``: two workers cannot both probe.
While down, actions older than the retry horizon are dead; after ``actions.down_alert_after`` one
``endpoint_down`` alert per outage is recorded (and goes through the alert rules, like any alert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from loopml.config import ActionsConfig
from loopml.enums import ActionStatus, AlertKind
from loopml.store import tables

__all__ = ["EndpointState", "endpoint_states", "raise_down_alerts"]

log = logging.getLogger(__name__)
OnAlert = Callable[[Connection, Sequence[dict[str, Any]]], None]


def _aware(value: datetime | None) -> datetime | None:
    """A stored time in UTC (SQLite hands timestamps back without their zone)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EndpointState:
    """One endpoint's breaker: down since when, after how many failed attempts, next probe when."""

    endpoint: str
    down_since: datetime | None
    failures: int
    next_probe_at: datetime | None
    last_error: str | None
    alerted_at: datetime | None
    disabled: bool = False

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "down_since": self.down_since,
            "failures": self.failures,
            "next_probe_at": self.next_probe_at,
            "last_error": self.last_error,
            "alerted": self.alerted_at is not None,
        }


def _state(row: Any) -> EndpointState:
    return EndpointState(
        row.name,
        _aware(row.down_since),
        int(row.failures or 0),
        _aware(row.next_probe_at),
        row.last_error,
        _aware(row.alerted_at),
        bool(row.disabled),
    )


def endpoint_states(engine: Engine | Connection) -> dict[str, EndpointState]:
    """Every endpoint with a stored state (disabled or down at some time), by name."""
    e = tables.action_endpoints
    if isinstance(engine, Connection):
        return {r.name: _state(r) for r in engine.execute(select(e))}
    with engine.connect() as conn:
        return {r.name: _state(r) for r in conn.execute(select(e))}


def _upsert(conn: Connection, name: str, now: datetime, **values: Any) -> None:
    e = tables.action_endpoints
    if conn.execute(update(e).where(e.c.name == name).values(updated_at=now, **values)).rowcount == 0:
        conn.execute(insert(e).values(name=name, disabled=False, updated_at=now, **values))


def any_pending(engine: Engine, names: list[str]) -> bool:
    """Whether any of the endpoints has a pending action (a cheap read before a claim's write)."""
    o = tables.action_outbox
    query = select(o.c.id).where(o.c.endpoint.in_(names), o.c.status == ActionStatus.PENDING).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


def lock(conn: Connection, names: list[str], now: datetime) -> dict[str, EndpointState]:
    """Lock the endpoints' rows (created when missing) until the caller's transaction ends, then read
    their states: claims that decide from these states never race another dispatcher's. (A write
    is the lock: a row lock on PostgreSQL, the database's write lock on SQLite.)"""
    e = tables.action_endpoints
    known = set(conn.execute(select(e.c.name).where(e.c.name.in_(names))).scalars())
    for name in sorted(set(names) - known):
        conn.execute(_insert_ignore(conn, e).values(name=name, disabled=False, failures=0, updated_at=now))
    conn.execute(update(e).where(e.c.name.in_(names)).values(name=e.c.name))
    rows = conn.execute(select(e).where(e.c.name.in_(names))).all()
    return {r.name: _state(r) for r in rows}


def free(conn: Connection, names: list[str], now: datetime) -> list[str]:
    """Of ``names``, the endpoints no other live claim is sending to: one dispatcher at a time sends
    an endpoint's actions, so that they go out in order (call it under :func:`lock`)."""
    o = tables.action_outbox
    if not names:
        return []
    busy = set(
        conn.execute(
            select(o.c.endpoint)
            .where(o.c.endpoint.in_(names), o.c.status == ActionStatus.PENDING, o.c.claimed_until >= now)
            .distinct()
        ).scalars()
    )
    return [n for n in names if n not in busy]


def _insert_ignore(conn: Connection, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def take_probe(conn: Connection, name: str, now: datetime, lease_s: float) -> bool:
    """Take the endpoint's probe slot (its probe is due): True for exactly one caller. The slot is
    held for the claim's lease, so a worker that dies mid-probe leaves it to the next one."""
    e = tables.action_endpoints
    taken = conn.execute(
        update(e)
        .where(e.c.name == name, e.c.down_since.is_not(None), e.c.next_probe_at <= now)
        .values(next_probe_at=now + timedelta(seconds=lease_s))
    ).rowcount
    return bool(taken)


def oldest_pending(conn: Connection, name: str, now: datetime) -> int | None:
    """The endpoint's oldest pending action that no live claim holds: its next probe."""
    o = tables.action_outbox
    query = (
        select(o.c.id)
        .where(o.c.endpoint == name, o.c.status == ActionStatus.PENDING)
        .where((o.c.claimed_until.is_(None)) | (o.c.claimed_until < now))
        .order_by(o.c.id)
        .limit(1)
    )
    value = conn.execute(query).scalar()
    return int(value) if value is not None else None


def mark_up(conn: Connection, name: str, now: datetime) -> None:
    """The endpoint answered: it is up again (a no-op when it was not down)."""
    e = tables.action_endpoints
    conn.execute(
        update(e)
        .where(e.c.name == name, e.c.down_since.is_not(None))
        .values(
            failures=0, down_since=None, next_probe_at=None, last_error=None, alerted_at=None, updated_at=now
        )
    )


def mark_failed(
    conn: Connection,
    config: ActionsConfig,
    name: str,
    now: datetime,
    *,
    probe: bool,
    error: str | None,
    retry_after: float | None,
) -> EndpointState:
    """A delivery to ``name`` failed for a reason worth retrying. A probe's failure moves the next
    probe along the schedule; any other failure takes the endpoint down unless it already is (sends
    that were in flight when another one failed do not count twice)."""
    e = tables.action_endpoints
    row = conn.execute(select(e).where(e.c.name == name)).first()
    state = _state(row) if row is not None else None
    if state is not None and state.down and not probe:
        return state
    failures = (state.failures if state is not None and state.down else 0) + 1
    delay = max(config.retry_delay(failures), retry_after or 0.0)
    down_since = state.down_since if state is not None and state.down else now
    next_probe_at = now + timedelta(seconds=delay)
    values = {
        "failures": failures,
        "down_since": down_since,
        "next_probe_at": next_probe_at,
        "last_error": error,
    }
    _upsert(conn, name, now, **values)
    disabled = state.disabled if state is not None else False
    alerted = state.alerted_at if state is not None and state.down else None
    return EndpointState(name, down_since, failures, next_probe_at, error, alerted, disabled)


def failed(
    conn: Connection,
    config: ActionsConfig,
    name: str,
    now: datetime,
    *,
    probe: bool,
    error: str | None,
    retry_after: float | None,
) -> int:
    """Record a failure worth retrying (:func:`mark_failed`); once the endpoint has been down for the
    whole retry horizon, its actions older than the horizon are dead. Returns how many died."""
    state = mark_failed(conn, config, name, now, probe=probe, error=error, retry_after=retry_after)
    horizon = timedelta(seconds=config.retry_horizon_s)
    if state.down_since is None or state.down_since > now - horizon:
        return 0
    dead = expire(conn, config, name, now, error)
    log.error("endpoint '%s' failed for the whole retry horizon: %d actions dead", name, dead)
    if oldest_pending(conn, name, now) is None:  # nothing waits: the next action goes at once
        mark_up(conn, name, now)
    return dead


def expire(conn: Connection, config: ActionsConfig, name: str, now: datetime, error: str | None) -> int:
    """While ``name`` is down, its pending actions older than the retry horizon are dead."""
    o = tables.action_outbox
    horizon = config.retry_horizon_s
    cutoff = now - timedelta(seconds=horizon)
    message = f"endpoint '{name}' kept failing for the whole retry horizon ({_span(horizon)}): {error}"
    return int(
        conn.execute(
            update(o)
            .where(o.c.endpoint == name, o.c.status == ActionStatus.PENDING, o.c.created_at <= cutoff)
            .where((o.c.claimed_until.is_(None)) | (o.c.claimed_until < now))
            .values(status=ActionStatus.DEAD, last_error=message[:1000])
        ).rowcount
    )


def _span(seconds: float) -> str:
    """``27h35m``, ``5m``, ``0.5s``: a short human span."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _down_alert(state: EndpointState, model: str, now: datetime, waiting: int) -> dict[str, Any]:
    assert state.down_since is not None
    down_for = _span((now - state.down_since).total_seconds())
    return {
        "model_name": model,
        "kind": AlertKind.ENDPOINT_DOWN,
        "subject": state.endpoint,
        "message": (
            f"action endpoint '{state.endpoint}' has failed for {down_for} ({state.failures} failed "
            f"attempts, last: {state.last_error}); {waiting} actions wait and go out once it answers."
        ),
        "details": {
            **state.to_dict(),
            "down_since": state.down_since.isoformat(),
            "next_probe_at": state.next_probe_at.isoformat() if state.next_probe_at else None,
            "waiting": waiting,
        },
        "window_start": state.down_since,  # one alert per outage
        "created_at": now,
    }


def raise_down_alerts(
    engine: Engine, config: ActionsConfig, model: str, now: datetime, on_alert: OnAlert | None = None
) -> list[str]:
    """Record one ``endpoint_down`` alert for each endpoint down for ``actions.down_alert_after`` and
    not yet alerted in this outage (with the actions the alert rules trigger, in one transaction).
    Returns the endpoints alerted."""
    e, o, a = tables.action_endpoints, tables.action_outbox, tables.alerts
    since = now - timedelta(seconds=config.down_alert_after_s)
    raised: list[str] = []
    with engine.begin() as conn:
        due = conn.execute(
            select(e).where(e.c.down_since.is_not(None), e.c.down_since <= since, e.c.alerted_at.is_(None))
        ).all()
        for row in due:
            claimed = conn.execute(
                update(e).where(e.c.name == row.name, e.c.alerted_at.is_(None)).values(alerted_at=now)
            ).rowcount
            if not claimed:
                continue
            waiting = conn.execute(
                select(func.count())
                .select_from(o)
                .where(o.c.endpoint == row.name, o.c.status == ActionStatus.PENDING)
            ).scalar_one()
            alert = _down_alert(_state(row), model, now, int(waiting))
            alert["id"] = conn.execute(insert(a).returning(a.c.id), alert).scalar_one()
            if on_alert is not None:
                on_alert(conn, [alert])
            raised.append(row.name)
    return raised
