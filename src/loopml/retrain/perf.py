"""A version's own performance: only the predictions it made itself.

The monitor reports on the model's traffic whatever version served it. With labels arriving days
late, the latest labelled window after a promotion is still the previous champion's; judging the new
champion on it would retrigger a cycle or roll the promotion back for the old model's faults. The
policy's performance floors and the watch window read this instead.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import select

from loopml.config import Settings
from loopml.enums import Origin
from loopml.features import parse_duration
from loopml.monitor import prediction_times, windowed_performance
from loopml.store import Store, tables

__all__ = ["own_performance"]


def _frame(settings: Settings, store: Store, version: int) -> pd.DataFrame:
    p, f = tables.predictions, tables.feedback
    query = select(p.c.id, p.c.created_at, p.c.score, p.c.inputs).where(
        p.c.model_name == settings.name, p.c.model_version == version, p.c.origin != Origin.SHADOW
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
        labels = dict(
            conn.execute(
                select(f.c.prediction_id, f.c.label)
                .join(p, p.c.id == f.c.prediction_id)
                .where(p.c.model_name == settings.name, p.c.model_version == version)
                .order_by(f.c.id)
            ).all()
        )
    frame = pd.DataFrame(rows, columns=["prediction_id", "created_at", "score", "inputs"])
    frame["time"] = prediction_times(frame, settings.event_time)
    frame["label"] = frame["prediction_id"].map(labels)
    return frame.dropna(subset=["time"])


def own_performance(settings: Settings, store: Store, version: int) -> dict[str, Any]:
    """``realized``: metrics of the latest window of ``version``'s own predictions with enough labels
    (with ``window_start``), or None; ``estimated``: the label-free estimate of its latest window."""
    frame = _frame(settings, store, version)
    empty: dict[str, Any] = {"realized": None, "window_start": None, "estimated": {}, "predictions": 0}
    if frame.empty:
        return empty
    cfg = settings.monitor
    history = windowed_performance(
        frame,
        task=settings.task,
        window=pd.Timedelta(milliseconds=parse_duration(cfg.window)),
        min_labels=cfg.min_labels,
    )
    labelled = next((h for h in reversed(history) if h.get("realized")), None)
    return {
        "realized": labelled["realized"] if labelled else None,
        "window_start": labelled["window_start"] if labelled else None,
        "estimated": dict(history[-1].get("estimated") or {}) if history else {},
        "predictions": len(frame),
    }
