"""Ground truth that arrives late: labels for earlier predictions, joined by prediction id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, insert, select

from loopml.errors import InputError
from loopml.store import tables
from loopml.store.engine import utcnow

__all__ = ["record_feedback"]


def record_feedback(engine: Engine, labels: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Store ground truth for earlier predictions: ``{"prediction_id": ..., "label": ...}`` items.

    Unknown prediction ids are refused (counted, not stored); a label sent twice keeps the latest.
    """
    rows = [dict(r) for r in labels]
    bad = [i for i, r in enumerate(rows) if "prediction_id" not in r or "label" not in r]
    if bad:
        raise InputError(f"feedback item {bad[0]} needs 'prediction_id' and 'label'.")
    ids = list({str(r["prediction_id"]) for r in rows})
    p = tables.predictions
    known: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            known.update(conn.execute(select(p.c.id).where(p.c.id.in_(chunk))).scalars())
    now = utcnow()
    accepted = [
        {"prediction_id": str(r["prediction_id"]), "label": r["label"], "received_at": now}
        for r in rows
        if str(r["prediction_id"]) in known
    ]
    if accepted:
        with engine.begin() as conn:
            conn.execute(insert(tables.feedback), accepted)
    return {"received": len(rows), "accepted": len(accepted), "unknown_ids": len(rows) - len(accepted)}
