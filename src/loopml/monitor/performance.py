"""Performance: predictions joined with late labels, per time window, always with label coverage;
and a label-free estimate for classifiers (confidence-based performance estimation, as NannyML's
CBPE does: a calibrated score is the expected label, so expected confusion counts follow)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from loopml.enums import Origin
from loopml.monitor.estimate import expected_metrics
from loopml.store import record_feedback, tables
from loopml.tasks import get_task

if TYPE_CHECKING:
    from loopml.train.calibration import ScoreCalibrator

__all__ = [
    "estimate_binary",
    "load_predictions",
    "prediction_times",
    "record_feedback",
    "summarize",
    "windowed_performance",
]


# An event time this far after its prediction was made was never accepted (``contract.event_time_ahead``
# refuses it at scoring time); one logged before loopml checked event times counts when it was made.
ACCEPTED_AHEAD = pd.Timedelta(days=1)


def prediction_times(
    frame: pd.DataFrame, event_time: str | None, ahead: pd.Timedelta | None = ACCEPTED_AHEAD
) -> pd.Series:
    """When each logged prediction happened (naive UTC): its event time where its ``inputs`` carry
    the ``event_time`` column as a time, else when it was made (``created_at``). A request need not
    send the event time when it is not a model input, so such predictions fall back to the clock
    instead of vanishing from every monitoring window; so does an event time more than ``ahead``
    after the prediction was made (one scoring refuses: monitoring windows hold accepted times only)."""
    made = pd.to_datetime(frame["created_at"], errors="coerce", utc=True)
    if event_time:
        given = frame["inputs"].map(lambda i: (i or {}).get(event_time) if isinstance(i, dict) else None)
        times = pd.to_datetime(given, errors="coerce", utc=True, format="ISO8601")
        if ahead is not None:
            times = times.where(~(times > made + ahead))
        made = times.fillna(made)
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
    with engine.connect() as conn:  # plain tuples: pandas probes a Row's attributes, at a cost per row
        frame = pd.DataFrame(
            [tuple(row) for row in conn.execute(query)],
            columns=["prediction_id", "created_at", "model_version", "score", "inputs"],
        )
        labels = pd.DataFrame(
            [tuple(row) for row in conn.execute(select(f.c.prediction_id, f.c.label, f.c.id))],
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


def estimate_binary(
    score: np.ndarray, threshold: float, probabilities: np.ndarray | None = None
) -> dict[str, float]:
    """Expected ROC AUC, average precision, precision and recall at ``threshold`` without labels,
    from expected counts (fast; :func:`~loopml.monitor.estimate.expected_metrics` gives the
    expectation of each metric itself, with an interval).

    Each row is a positive with probability ``probabilities`` (the calibrated scores; the scores
    themselves when None); rows are ranked and flagged by their ``score``.
    """
    raw = np.asarray(score, dtype=float)
    s = np.clip(raw if probabilities is None else np.asarray(probabilities, dtype=float), 0.0, 1.0)
    if len(s) == 0:
        return {
            "roc_auc": float("nan"),
            "average_precision": float("nan"),
            "precision": float("nan"),
            "recall": float("nan"),
            "positive_rate": float("nan"),
        }
    auc, ap = _auc_ap(s, np.argsort(-raw, kind="stable"))
    flagged = raw >= threshold
    tp = float(s[flagged].sum())
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "precision": tp / flagged.sum() if flagged.any() else float("nan"),
        "recall": tp / s.sum() if s.sum() > 0 else float("nan"),
        "positive_rate": float(s.mean()),
    }


def summarize(
    rows: pd.DataFrame,
    *,
    task: str,
    threshold: float | None = None,
    k: int = 100,
    min_labels: int = 30,
    calibrator: ScoreCalibrator | None = None,
    intervals: bool = False,
) -> dict[str, Any]:
    """Predictions, labels, label coverage, realized metrics on the labelled rows (when there are
    ``min_labels`` of them) and, for binary tasks, the label-free estimate over all rows, from the
    scores ``calibrator`` calibrates (when given); with ``intervals``, each metric's expectation and
    its interval (``estimated_interval``: metric -> ``[low, high]``)."""
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
        score = rows["score"].to_numpy(dtype=float)
        probability = score if calibrator is None else calibrator.predict(score)
        if intervals:
            found = expected_metrics(score, probability, threshold=threshold or 0.5)
            entry["estimated"] = found.values
            entry["estimated_interval"] = {m: list(v) for m, v in found.intervals.items()}
        else:
            entry["estimated"] = estimate_binary(score, threshold or 0.5, probability)
    return entry


def windowed_performance(
    frame: pd.DataFrame,
    *,
    task: str,
    window: str | pd.Timedelta = "1D",
    threshold: float | None = None,
    k: int = 100,
    min_labels: int = 30,
    calibrator: ScoreCalibrator | None = None,
    intervals: bool = False,
) -> list[dict[str, Any]]:
    """:func:`summarize` for each time window of ``frame`` (by its ``time`` column)."""
    return [
        {
            "window_start": start,
            **summarize(
                rows,
                task=task,
                threshold=threshold,
                k=k,
                min_labels=min_labels,
                calibrator=calibrator,
                intervals=intervals,
            ),
        }
        for start, rows in frame.groupby(
            pd.Grouper(key="time", freq=pd.tseries.frequencies.to_offset(window))
        )
        if not rows.empty
    ]
