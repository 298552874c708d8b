"""Performance: predictions joined with late labels, per time window, always with label coverage;
and a label-free estimate for classifiers (confidence-based performance estimation, as NannyML's
CBPE does: a calibrated score is the expected label, so expected confusion counts follow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from loopml.enums import Origin
from loopml.store import record_feedback, tables
from loopml.tasks import get_task

__all__ = [
    "estimate_binary",
    "load_predictions",
    "prediction_times",
    "record_feedback",
    "summarize",
    "windowed_performance",
]


def prediction_times(frame: pd.DataFrame, event_time: str | None) -> pd.Series:
    """When each logged prediction happened (naive UTC): its event time where its ``inputs`` carry
    the ``event_time`` column as a time, else when it was made (``created_at``). A request need not
    send the event time when it is not a model input, so such predictions fall back to the clock
    instead of vanishing from every monitoring window."""
    made = pd.to_datetime(frame["created_at"], errors="coerce", utc=True)
    if event_time:
        given = frame["inputs"].map(lambda i: (i or {}).get(event_time))
        made = pd.to_datetime(given, errors="coerce", utc=True).fillna(made)
    return made.dt.tz_localize(None)


def load_predictions(
    engine: Engine,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    event_time: str | None = None,
    origin: Origin | None = None,
) -> pd.DataFrame:
    """Predictions of model ``name`` (only those of ``origin`` when given) with their latest label
    (NaN where none arrived yet).

    Columns: ``prediction_id``, ``time`` (see :func:`prediction_times`: the event time from the
    inputs when ``event_time`` is given and they carry it, else when the prediction was made),
    ``model_version``, ``score``, ``label``, ``inputs``.
    """
    p, f = tables.predictions, tables.feedback
    query = select(p.c.id, p.c.created_at, p.c.model_version, p.c.score, p.c.inputs).where(
        p.c.model_name == name,
        # a shadowing challenger's predictions are judged by the cycle, never by the monitor
        p.c.origin != Origin.SHADOW if origin is None else p.c.origin == origin,
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(query).all(),
            columns=["prediction_id", "created_at", "model_version", "score", "inputs"],
        )
        labels = pd.DataFrame(
            conn.execute(select(f.c.prediction_id, f.c.label, f.c.id)).all(),
            columns=["prediction_id", "label", "order"],
        )
    latest = labels.sort_values("order").drop_duplicates("prediction_id", keep="last")
    frame = frame.merge(latest[["prediction_id", "label"]], on="prediction_id", how="left")
    frame["time"] = prediction_times(frame, event_time)
    if since is not None:
        frame = frame[frame["time"] >= pd.Timestamp(since).tz_localize(None)]
    if until is not None:
        frame = frame[frame["time"] < pd.Timestamp(until).tz_localize(None)]
    return frame.sort_values("time").reset_index(drop=True)


def _auc_ap(expected_positive: np.ndarray, order: np.ndarray) -> tuple[float, float]:
    e = expected_positive[order]
    tp, fp = np.cumsum(e), np.cumsum(1 - e)
    positives, negatives = tp[-1], fp[-1]
    if positives <= 0 or negatives <= 0:
        return float("nan"), float("nan")
    tpr, fpr = np.r_[0.0, tp / positives], np.r_[0.0, fp / negatives]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    precision, recall = tp / np.arange(1, len(e) + 1), tp / positives
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return auc, ap


def estimate_binary(score: np.ndarray, threshold: float) -> dict[str, float]:
    """Expected ROC AUC, average precision, precision and recall at ``threshold`` without labels.

    Assumes calibrated scores: each row is a positive with probability equal to its score.
    """
    s = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    if len(s) == 0:
        return {
            "roc_auc": float("nan"),
            "average_precision": float("nan"),
            "precision": float("nan"),
            "recall": float("nan"),
            "positive_rate": float("nan"),
        }
    auc, ap = _auc_ap(s, np.argsort(-s, kind="stable"))
    flagged = s >= threshold
    tp = float(s[flagged].sum())
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "precision": tp / flagged.sum() if flagged.any() else float("nan"),
        "recall": tp / s.sum() if s.sum() > 0 else float("nan"),
        "positive_rate": float(s.mean()),
    }


def summarize(
    rows: pd.DataFrame, *, task: str, threshold: float | None = None, k: int = 100, min_labels: int = 30
) -> dict[str, Any]:
    """Predictions, labels, label coverage, realized metrics on the labelled rows (when there are
    ``min_labels`` of them) and, for binary tasks, the label-free estimate over all rows."""
    labelled = rows[rows["label"].notna()]
    entry: dict[str, Any] = {
        "predictions": len(rows),
        "labels": len(labelled),
        "label_coverage": len(labelled) / len(rows) if len(rows) else 0.0,
    }
    spec = get_task(task)
    if spec.positive_class:
        entry["positives"] = int((pd.to_numeric(labelled["label"], errors="coerce") == 1).sum())
    if len(labelled) >= min_labels:
        y = labelled["label"].to_numpy(dtype=float if spec.numeric_labels else object)
        # Per-row metric inputs logged with each prediction (a forecast's MASE scale).
        extra = {
            c: labelled["inputs"].map(lambda i, c=c: (i or {}).get(c, np.nan)).to_numpy(dtype=float)
            for c in spec.metric_inputs
        }
        entry["realized"] = spec.metrics(y, labelled["score"].to_numpy(dtype=float), k=k, **extra)
    if spec.positive_class:
        entry["estimated"] = estimate_binary(rows["score"].to_numpy(dtype=float), threshold or 0.5)
    return entry


def windowed_performance(
    frame: pd.DataFrame,
    *,
    task: str,
    window: str | pd.Timedelta = "1D",
    threshold: float | None = None,
    k: int = 100,
    min_labels: int = 30,
) -> list[dict[str, Any]]:
    """:func:`summarize` for each time window of ``frame`` (by its ``time`` column)."""
    return [
        {"window_start": start, **summarize(rows, task=task, threshold=threshold, k=k, min_labels=min_labels)}
        for start, rows in frame.groupby(
            pd.Grouper(key="time", freq=pd.tseries.frequencies.to_offset(window))
        )
        if not rows.empty
    ]
