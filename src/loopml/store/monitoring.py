"""The newest recorded monitoring pass of each model: one row per model, replaced by each pass.

A monitoring pass (``loopml monitor``, and every policy check of ``loopml worker``) loads the
prediction log and compares it with the reference: too slow for every Prometheus scrape. What it
found is kept here as a small JSON summary, which ``/metrics`` reads with one primary-key lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from loopml.store import tables
from loopml.store.engine import utcnow

__all__ = ["MonitorPass", "latest_monitor_pass", "record_monitor_pass"]


@dataclass(frozen=True)
class MonitorPass:
    """A recorded pass: the version it judged, when, and its ``summary``: ``drift`` (feature ->
    ``{psi, js, statistic, p_value, drifted}``), ``realized`` and ``estimated`` (metric -> value),
    ``label_coverage``, ``waiting_labels`` (predictions without a label yet), ``window_start``."""

    model_name: str
    model_version: int
    created_at: datetime
    summary: dict[str, Any]


def record_monitor_pass(engine: Engine, name: str, version: int, summary: dict[str, Any]) -> None:
    """Keep ``summary`` (JSON) as model ``name``'s newest pass, replacing the one before; a NaN or
    infinite number is kept as null (JSON has none, and PostgreSQL refuses them)."""
    row = {"model_name": name, "model_version": version, "created_at": utcnow(), "summary": _finite(summary)}
    table = tables.monitor_latest
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.model_name == name))
        conn.execute(insert(table), [row])


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def latest_monitor_pass(engine: Engine, name: str) -> MonitorPass | None:
    """Model ``name``'s newest recorded pass (None before the first)."""
    table = tables.monitor_latest
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.model_name == name)).first()
    if row is None:
        return None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return MonitorPass(row.model_name, row.model_version, created, dict(row.summary))
