"""Shadow: a gated challenger scores live traffic beside the champion (logged with origin ``shadow``,
never returned to clients); once the window is over, both are compared on its labelled rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from loopml.config import Settings
from loopml.enums import Origin
from loopml.features import parse_duration
from loopml.registry import get_version
from loopml.store import Store, tables
from loopml.tasks import get_task

if TYPE_CHECKING:
    from loopml.retrain.events import Event

__all__ = ["compare_shadow", "shadow_pairs"]

LABEL_GRACE = 4  # wait up to this many windows in all for enough labels, then give up


def shadow_pairs(engine: Engine, name: str, challenger: int, since: datetime) -> pd.DataFrame:
    """Each shadow prediction of ``challenger`` since ``since``, beside the champion's prediction of
    the same request and its label (NaN until one arrives).

    Columns: ``prediction_id`` (the champion's), ``champion_version``, ``champion`` and
    ``challenger`` (their scores), ``label``.
    """
    p, f = tables.predictions, tables.feedback
    query = select(p.c.score, p.c.output).where(
        p.c.model_name == name,
        p.c.origin == Origin.SHADOW,
        p.c.model_version == challenger,
        p.c.created_at >= (since if since.tzinfo else since.replace(tzinfo=UTC)),
    )
    with engine.connect() as conn:
        shadow = [(r.output.get("shadow_of"), r.score) for r in conn.execute(query)]
        ids = [i for i, _ in shadow if i]
        champion: dict[str, tuple[int, float]] = {}
        labels: dict[str, Any] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in conn.execute(select(p.c.id, p.c.model_version, p.c.score).where(p.c.id.in_(chunk))):
                champion[row.id] = (row.model_version, row.score)
            rows = conn.execute(
                select(f.c.prediction_id, f.c.label).where(f.c.prediction_id.in_(chunk)).order_by(f.c.id)
            )
            labels.update({r.prediction_id: r.label for r in rows})
    records = [
        {
            "prediction_id": i,
            "champion_version": champion[i][0],
            "champion": champion[i][1],
            "challenger": score,
            "label": labels.get(i, np.nan),
        }
        for i, score in shadow
        if i in champion
    ]
    columns = ["prediction_id", "champion_version", "champion", "challenger", "label"]
    return pd.DataFrame.from_records(records, columns=columns)


def compare_shadow(
    settings: Settings, store: Store, event: Event, now: datetime
) -> tuple[bool, str, dict[str, Any]] | None:
    """The shadow verdict of a ``shadowing`` cycle: None while its window (or its labels) are still
    to come; else (passed, why, summary). The challenger must beat the champion on the same labelled
    live rows by ``retrain.gate.min_improvement``."""
    window = timedelta(milliseconds=parse_duration(settings.retrain.shadow or "0s"))
    since = datetime.fromisoformat(event.details["shadow_since"])
    if now < since + window:
        return None
    challenger = int(event.challenger_version or 0)
    pairs = shadow_pairs(store.engine, settings.name, challenger, since)
    labelled = pairs[pairs["label"].notna()]
    minimum = settings.monitor.min_labels
    summary: dict[str, Any] = {"rows": len(pairs), "labelled": len(labelled)}
    if len(labelled) < minimum:
        if now < since + LABEL_GRACE * window:
            return None
        why = f"shadow: {len(labelled)} labelled live rows after {LABEL_GRACE} windows (need {minimum})"
        return False, why, summary
    return _verdict(settings, store, challenger, labelled, summary)


def _verdict(
    settings: Settings, store: Store, challenger: int, labelled: pd.DataFrame, summary: dict[str, Any]
) -> tuple[bool, str, dict[str, Any]]:
    metrics = get_version(store.engine, settings.name, challenger).metrics
    name, greater = metrics["metric"], metrics["greater_is_better"]
    task = get_task(settings.task)
    y = labelled["label"].to_numpy(dtype=float)
    k = settings.train.precision_at_k

    def score(column: str) -> float:
        return float(task.metrics(y, labelled[column].to_numpy(dtype=float), k=k).get(name, np.nan))

    theirs, ours = score("champion"), score("challenger")
    gain = (ours - theirs) if greater else (theirs - ours)
    needed = settings.retrain.gate.min_improvement
    passed = bool(np.isfinite(gain) and gain >= needed)
    summary.update(champion=theirs, challenger=ours, metric=name)
    why = (
        f"shadow: {name} {ours:.4f} against the champion's {theirs:.4f} on {len(labelled)} labelled "
        f"live rows (gain {gain:+.4f}, needed {needed})"
    )
    return passed, why, summary
