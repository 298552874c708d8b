"""Ground truth that arrives late: labels for earlier predictions, joined by prediction id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from loopml.errors import InputError
from loopml.store import tables
from loopml.store.engine import utcnow

__all__ = ["LabelCheck", "record_feedback"]

# A version's signature -> the check of one label for it: the label to store, or a ValueError.
LabelCheck = Callable[[Mapping[str, Any]], Callable[[Any], Any]]
_MAX_DETAILS = 100


def record_feedback(
    engine: Engine, labels: Iterable[Mapping[str, Any]], check: LabelCheck | None = None
) -> dict[str, int]:
    """Store ground truth for earlier predictions: ``{"prediction_id": ..., "label": ...}`` items.

    Unknown prediction ids are refused (counted, not stored); a label sent twice keeps the latest.
    With ``check`` (``loopml.tasks.label_check``) each label is checked against the version that made
    its prediction first: one that breaks it is an :class:`InputError` naming the item and the
    prediction id, and nothing is stored.
    """
    rows = [dict(r) for r in labels]
    bad = [i for i, r in enumerate(rows) if "prediction_id" not in r or "label" not in r]
    if bad:
        raise InputError(f"feedback item {bad[0]} needs 'prediction_id' and 'label'.")
    ids = list({str(r["prediction_id"]) for r in rows})
    with engine.connect() as conn:
        made_by = _made_by(conn, ids)
        checks = _checks(conn, set(made_by.values()), check) if check is not None else {}
    now = utcnow()
    accepted, problems = [], []
    for i, r in enumerate(rows):
        prediction_id = str(r["prediction_id"])
        version = made_by.get(prediction_id)
        if version is None:
            continue
        label, problem = _checked(checks.get(version), r["label"])
        if problem is not None:
            problems.append(_problem(i, prediction_id, version, problem))
        accepted.append({"prediction_id": prediction_id, "label": label, "received_at": now})
    if problems:
        raise InputError(problems[0]["error"] + _more(len(problems)), details=problems[:_MAX_DETAILS])
    if accepted:
        with engine.begin() as conn:
            conn.execute(insert(tables.feedback), accepted)
    return {"received": len(rows), "accepted": len(accepted), "unknown_ids": len(rows) - len(accepted)}


def _made_by(conn: Connection, ids: list[str]) -> dict[str, tuple[str, int]]:
    """The model and version that made each known prediction."""
    p = tables.predictions
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        query = select(p.c.id, p.c.model_name, p.c.model_version).where(p.c.id.in_(chunk))
        found.update({row.id: (row.model_name, row.model_version) for row in conn.execute(query)})
    return found


def _checks(
    conn: Connection, versions: set[tuple[str, int]], check: LabelCheck
) -> dict[tuple[str, int], tuple[str, Callable[[Any], Any]]]:
    """Each version's task and label check (a version no longer registered is not checked)."""
    mv = tables.model_versions
    found = {}
    for name, version in versions:
        query = select(mv.c.signature).where(mv.c.name == name, mv.c.version == version)
        signature = conn.execute(query).scalar_one_or_none()
        if signature is not None:
            found[(name, version)] = (str(signature.get("task", "")), check(signature))
    return found


def _checked(check: tuple[str, Callable[[Any], Any]] | None, label: Any) -> tuple[Any, str | None]:
    if check is None:
        return label, None
    task, rule = check
    try:
        return rule(label), None
    except ValueError as exc:
        return label, f"{exc} (a {task} model's label)" if task else str(exc)


def _problem(i: int, prediction_id: str, version: tuple[str, int], problem: str) -> dict[str, Any]:
    name, number = version
    error = (
        f"feedback item {i} (prediction_id '{prediction_id}', model '{name}' version {number}): "
        f"label {problem}"
    )
    return {"item": i, "prediction_id": prediction_id, "error": error}


def _more(count: int) -> str:
    more = f" ({count - 1} more in error.details)" if count > 1 else ""
    return f"{more}; nothing was stored."
