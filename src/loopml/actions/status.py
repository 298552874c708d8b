"""What the outbox holds (for ``loopml actions list`` and the dashboard), and replaying dead actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from loopml.actions.breaker import endpoint_states
from loopml.enums import ActionStatus
from loopml.errors import InputError
from loopml.store import tables, utcnow

__all__ = ["STATUSES", "OutboxBacklog", "action_summary", "outbox_backlog", "recent_actions", "replay"]

STATUSES = tuple(ActionStatus)


def action_summary(engine: Engine) -> dict[str, Any]:
    """Counts per status, per kind and per endpoint, the endpoints disabled by HTTP 410, and the
    endpoints that are down (failing: their actions wait for a probe to get through).

    ``{"pending": 3, "delivered": 120, "dead": 1, "suppressed": 9, "total": 133,
    "by_kind": {"webhook": {"pending": 3, ...}}, "by_endpoint": {...}, "disabled_endpoints": [...],
    "down_endpoints": [{"endpoint": "cases", "down_since": ..., "failures": 3, ...}]}``
    """
    o, e = tables.action_outbox, tables.action_endpoints
    with engine.connect() as conn:
        grouped = conn.execute(
            select(o.c.kind, o.c.endpoint, o.c.status, func.count()).group_by(
                o.c.kind, o.c.endpoint, o.c.status
            )
        ).all()
        disabled = conn.execute(select(e).where(e.c.disabled.is_(True)).order_by(e.c.name)).all()
    summary: dict[str, Any] = {s: 0 for s in STATUSES}
    by_kind: dict[str, dict[str, int]] = {}
    by_endpoint: dict[str, dict[str, int]] = {}
    for kind, endpoint, status, count in grouped:
        summary[status] = summary.get(status, 0) + count
        for bucket, name in ((by_kind, kind), (by_endpoint, endpoint)):
            counts = bucket.setdefault(name, {s: 0 for s in STATUSES})
            counts[status] = counts.get(status, 0) + count
    summary["total"] = sum(summary[s] for s in STATUSES)
    summary["by_kind"] = by_kind
    summary["by_endpoint"] = by_endpoint
    summary["disabled_endpoints"] = [
        {"endpoint": r.name, "reason": r.reason, "since": r.updated_at} for r in disabled
    ]
    states = endpoint_states(engine)
    summary["down_endpoints"] = [states[n].to_dict() for n in sorted(states) if states[n].down]
    return summary


@dataclass(frozen=True)
class OutboxBacklog:
    """Actions not delivered yet (``pending``, retries included) and the oldest one's creation time;
    ``dead`` ones gave up and wait for a replay."""

    pending: int
    dead: int
    oldest_pending_at: datetime | None


def outbox_backlog(engine: Engine) -> OutboxBacklog:
    """The outbox's backlog in one indexed query per status (cheap enough for every metrics scrape)."""
    o = tables.action_outbox
    with engine.connect() as conn:
        pending, oldest = conn.execute(
            select(func.count(), func.min(o.c.created_at)).where(o.c.status == ActionStatus.PENDING)
        ).one()
        dead = conn.execute(select(func.count()).where(o.c.status == ActionStatus.DEAD)).scalar_one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return OutboxBacklog(int(pending), int(dead), oldest)


def recent_actions(engine: Engine, *, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest actions (optionally of one status), newest first."""
    if status is not None and status not in STATUSES:
        raise InputError(f"status '{status}' is not one of {', '.join(STATUSES)}.")
    o = tables.action_outbox
    query = select(o).order_by(o.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(o.c.status == status)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "id": r.id,
            "key": r.key,
            "rule": r.rule,
            "endpoint": r.endpoint,
            "kind": r.kind,
            "status": r.status,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "created_at": r.created_at,
            "delivered_at": r.delivered_at,
        }
        for r in rows
    ]


def replay(engine: Engine, *, ids: list[int] | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Re-queue dead actions (all, the given ids, or one endpoint's) and re-enable their endpoints.

    A replayed action keeps its idempotency key, so a receiver that did get it before drops the copy.
    Returns ``{"replayed": n, "enabled": [endpoints re-enabled]}``.
    """
    o, e = tables.action_outbox, tables.action_endpoints
    now = utcnow()
    where = [o.c.status == ActionStatus.DEAD]
    if ids:
        where.append(o.c.id.in_(ids))
    if endpoint is not None:
        where.append(o.c.endpoint == endpoint)
    with engine.begin() as conn:
        endpoints = set(conn.execute(select(o.c.endpoint).where(*where).distinct()).scalars())
        if endpoint is not None:
            endpoints.add(endpoint)
        elif not ids:  # replay everything: every disabled endpoint comes back too
            endpoints |= set(conn.execute(select(e.c.name).where(e.c.disabled.is_(True))).scalars())
        replayed = conn.execute(
            update(o)
            .where(*where)
            .values(
                status=ActionStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                claim_token=None,
                claimed_until=None,
            )
        ).rowcount
        names = sorted(
            conn.execute(select(e.c.name).where(e.c.name.in_(endpoints), e.c.disabled.is_(True))).scalars()
        )
        conn.execute(update(e).where(e.c.name.in_(names)).values(disabled=False, updated_at=now))
        # an endpoint that is down is probed at once with the replayed actions (not at its next probe)
        conn.execute(
            update(e).where(e.c.name.in_(endpoints), e.c.down_since.is_not(None)).values(next_probe_at=now)
        )
    if ids and replayed == 0:
        raise InputError(
            f"no dead action with id {', '.join(map(str, ids))}; see `loopml actions list --status dead`."
        )
    return {"replayed": int(replayed), "enabled": names}
