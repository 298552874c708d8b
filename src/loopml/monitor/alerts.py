"""Monitoring alerts: recorded once per model, kind, subject and window; listed and counted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from loopml.enums import AlertKind
from loopml.store import OnWrite, tables, utcnow

__all__ = ["Alert", "alert_counts", "list_alerts", "record_alerts"]


@dataclass(frozen=True)
class Alert:
    """One recorded alert."""

    id: int
    kind: AlertKind
    subject: str
    message: str
    window_start: datetime | None
    created_at: datetime


def record_alerts(
    engine: Engine,
    model: str,
    alerts: list[dict[str, Any]],
    details: dict[str, Any],
    *,
    on_alert: OnWrite | None = None,
) -> int:
    """Store alerts not already recorded for the same model, kind, subject and window; returns how many.

    ``on_alert(connection, rows)`` (the actions outbox hook) runs in the same transaction, with the
    new rows and their ids, so an alert and the actions it triggers are stored together or not at all.
    """
    a = tables.alerts
    new: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for alert in alerts:
            exists = conn.execute(
                select(a.c.id).where(
                    a.c.model_name == model,
                    a.c.kind == alert["kind"],
                    a.c.subject == alert["subject"],
                    a.c.window_start == alert["window_start"],
                )
            ).first()
            if exists is None:
                row = {**alert, "model_name": model, "details": details, "created_at": utcnow()}
                row["id"] = conn.execute(insert(a).returning(a.c.id), row).scalar_one()
                new.append(row)
        if new and on_alert is not None:
            on_alert(conn, new)
    return len(new)


def list_alerts(engine: Engine, model: str, limit: int = 50) -> list[Alert]:
    """The newest alerts of ``model``, newest first."""
    a = tables.alerts
    query = select(a).where(a.c.model_name == model).order_by(a.c.created_at.desc(), a.c.id.desc())
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit)).all()
    return [Alert(r.id, AlertKind(r.kind), r.subject, r.message, r.window_start, r.created_at) for r in rows]


def alert_counts(engine: Engine, model: str) -> Counter[AlertKind]:
    """How many alerts ``model`` has had, by kind."""
    a = tables.alerts
    query = select(a.c.kind, func.count()).where(a.c.model_name == model).group_by(a.c.kind)
    with engine.connect() as conn:
        return Counter({AlertKind(kind): int(count) for kind, count in conn.execute(query)})
