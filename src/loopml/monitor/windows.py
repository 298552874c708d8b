"""Per-window figures folded from :class:`~loopml.monitor.aggregates.WindowAggregates`: volume, label
coverage, the version that served each window, realized and label-free estimated performance, and
drift. Each costs a few operations per window and score bin, never per prediction."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from loopml.monitor.aggregates import WindowAggregates
from loopml.monitor.drift import compare_counts
from loopml.validate.profile import Profile

__all__ = ["binned_binary_metrics", "window_drift", "window_summaries"]

# Column positions in WindowAggregates.cells.
_W, _V, _B, _FLAG, _N, _S, _L, _Y, _Y2, _E, _AE, _SE = range(12)


def binned_binary_metrics(
    positives: np.ndarray, negatives: np.ndarray, flagged: np.ndarray
) -> dict[str, float]:
    """ROC AUC, average precision, precision and recall at the threshold, and the positive rate, from
    counts per score bin ordered from the highest score down (``flagged``: the bins at or above the
    threshold). Counts may be expected counts (sums of calibrated scores) for the label-free estimate."""
    p_total, n_total = float(positives.sum()), float(negatives.sum())
    nan = float("nan")
    if p_total <= 0 or n_total <= 0:
        rate = p_total / (p_total + n_total) if p_total + n_total > 0 else nan
        return {
            "roc_auc": nan,
            "average_precision": nan,
            "precision": nan,
            "recall": nan,
            "positive_rate": rate,
        }
    below = n_total - np.cumsum(negatives)  # negatives scoring lower than each bin
    auc = float(np.sum(positives * (below + 0.5 * negatives)) / (p_total * n_total))
    cum_p, cum_all = np.cumsum(positives), np.cumsum(positives + negatives)
    precision_at = np.divide(cum_p, cum_all, out=np.zeros_like(cum_p), where=cum_all > 0)
    ap = float(np.sum(positives / p_total * precision_at))
    tp, chosen = float(positives[flagged].sum()), float((positives + negatives)[flagged].sum())
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "precision": tp / chosen if chosen > 0 else nan,
        "recall": tp / p_total,
        "positive_rate": p_total / (p_total + n_total),
    }


def _binary(cells: np.ndarray, min_labels: int) -> dict[str, Any]:
    keys = [(b, f) for b, f in zip(cells[:, _B], cells[:, _FLAG], strict=True)]
    order = sorted(range(len(keys)), key=lambda i: keys[i], reverse=True)
    c = cells[order]
    flagged = c[:, _FLAG] == 1
    out: dict[str, Any] = {"positives": int(c[:, _Y].sum())}
    scored = c[c[:, _B] >= 0]
    out["estimated"] = binned_binary_metrics(
        scored[:, _S], scored[:, _N] - scored[:, _S], scored[:, _FLAG] == 1
    )
    if c[:, _L].sum() >= min_labels:
        out["realized"] = binned_binary_metrics(c[:, _Y], c[:, _L] - c[:, _Y], flagged)
    return out


def _errors(cells: np.ndarray, min_labels: int) -> dict[str, Any]:
    labelled = float(cells[:, _L].sum())
    if labelled < min_labels:
        return {}
    return {
        "realized": {
            "mae": float(cells[:, _AE].sum()) / labelled,
            "rmse": math.sqrt(float(cells[:, _SE].sum()) / labelled),
            "bias": float(cells[:, _E].sum()) / labelled,
        }
    }


def window_summaries(
    agg: WindowAggregates, *, binary: bool, errors: bool, min_labels: int
) -> list[dict[str, Any]]:
    """One entry per window, oldest first: ``window_start``, ``predictions``, ``labels``,
    ``label_coverage``, ``versions`` (predictions per model version), and, with enough labels,
    ``realized`` metrics; a binary classifier's ``positives`` and label-free ``estimated`` metrics."""
    by_window: dict[int, list[list[float]]] = defaultdict(list)
    for cell in agg.cells:
        by_window[int(cell[_W])].append(cell)
    out = []
    for w in sorted(by_window):
        cells = np.asarray(by_window[w], dtype=float)
        n, labelled = int(cells[:, _N].sum()), int(cells[:, _L].sum())
        versions: dict[int, int] = defaultdict(int)
        for v, count in zip(cells[:, _V], cells[:, _N], strict=True):
            versions[int(v)] += int(count)
        entry: dict[str, Any] = {
            "window_start": agg.window_start(w).isoformat(),
            "predictions": n,
            "labels": labelled,
            "label_coverage": labelled / n if n else 0.0,
            "versions": dict(sorted(versions.items())),
        }
        if binary:
            entry.update(_binary(cells, min_labels))
        elif errors:
            entry.update(_errors(cells, min_labels))
        out.append(entry)
    return out


def window_drift(
    agg: WindowAggregates,
    profile: Profile,
    *,
    psi_threshold: float,
    js_threshold: float,
    alpha: float,
    min_rows: int,
) -> list[dict[str, Any]]:
    """Drift of each counted column per window (windows with at least ``min_rows`` predictions):
    ``window_start``, ``column``, ``kind``, ``psi``, ``js``, ``p_value``, ``drifted``, and ``level``
    (``ok``, ``warn``, ``alert``: the absolute scale of :mod:`loopml.monitor.drift`, the colour to show)."""
    rows = []
    for w, counts in sorted(agg.drift_counts(profile).items()):
        if counts.rows < min_rows:
            continue
        found = compare_counts(
            profile,
            counts,
            psi_threshold=psi_threshold,
            js_threshold=js_threshold,
            alpha=alpha,
            min_rows=min_rows,
        )
        start = agg.window_start(w).isoformat()
        rows += [
            {
                "window_start": start,
                "column": r.column,
                "kind": r.kind,
                "psi": r.psi,
                "js": r.js,
                "p_value": r.p_value,
                "drifted": r.drifted,
                "level": r.level,
            }
            for r in found
        ]
    return rows
