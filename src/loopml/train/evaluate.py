"""Evaluation: bootstrap confidence intervals, calibration, cost-based thresholds, segments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "bootstrap_ci",
    "calibration",
    "confusion",
    "cost_threshold",
    "residual_bins",
    "roc_pr_curves",
    "segment_metrics",
]

Metrics = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def bootstrap_ci(
    y: np.ndarray, output: np.ndarray, metrics: Metrics, *, n: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of each metric (resampling rows with replacement)."""
    if n == 0 or len(y) == 0:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        for name, value in metrics(y[rows], output[rows]).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    return {
        name: [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]
        for name, values in draws.items()
        if not np.all(np.isnan(values))
    }


def calibration(y: np.ndarray, score: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Reliability curve on quantile bins: mean predicted probability against observed frequency."""
    edges = np.unique(np.quantile(score, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, max(len(edges) - 2, 0))
    out = []
    for b in np.unique(which):
        mask = which == b
        out.append(
            {
                "predicted": float(score[mask].mean()),
                "observed": float(y[mask].mean()),
                "count": int(mask.sum()),
            }
        )
    return out


def confusion(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts of true/false positives/negatives at ``threshold``."""
    flagged = score >= threshold
    return {
        "tp": int(np.sum(flagged & (y == 1))),
        "fp": int(np.sum(flagged & (y == 0))),
        "fn": int(np.sum(~flagged & (y == 1))),
        "tn": int(np.sum(~flagged & (y == 0))),
    }


def cost_threshold(y: np.ndarray, score: np.ndarray, fn_cost: float, fp_cost: float) -> dict[str, float]:
    """The threshold minimising ``fn_cost * FN + fp_cost * FP``, found over every distinct score.

    Examples
    --------
    >>> y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    >>> cost_threshold(y, s, fn_cost=10, fp_cost=1)["threshold"]
    0.35
    """
    order = np.argsort(-score, kind="stable")
    ranked, labels = score[order], y[order]
    tp = np.cumsum(labels)
    fp = np.cumsum(1 - labels)
    cost = fn_cost * (labels.sum() - tp) + fp_cost * fp  # flag the top i+1 rows
    last = np.r_[ranked[1:] != ranked[:-1], True]  # only cut between distinct scores
    candidates = np.flatnonzero(last)
    best = candidates[np.argmin(cost[candidates])]
    none_cost = float(fn_cost * labels.sum())
    if none_cost <= cost[best]:
        return {"threshold": float(np.nextafter(ranked[0], np.inf)), "cost": none_cost, "flagged": 0}
    return {"threshold": float(ranked[best]), "cost": float(cost[best]), "flagged": int(best + 1)}


def segment_metrics(
    frame: pd.DataFrame,
    segments: list[str],
    y: np.ndarray,
    output: np.ndarray,
    metrics: Metrics,
    *,
    top: int = 20,
    min_rows: int = 30,
) -> dict[str, list[dict[str, Any]]]:
    """Metrics per value of each segment column (the ``top`` most frequent values with enough rows)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for column in segments:
        values = frame[column].astype("string").fillna("<missing>").to_numpy()
        counts = pd.Series(values).value_counts()
        rows = []
        for value in counts[counts >= min_rows].index[:top]:
            mask = values == value
            rows.append({"value": str(value), "rows": int(mask.sum()), **metrics(y[mask], output[mask])})
        out[column] = rows
    return out


def _thin(values: list[np.ndarray], points: int) -> list[list[float]]:
    """At most ``points`` evenly spaced entries of each array (always the first and the last)."""
    n = len(values[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.array([], int)
    return [[round(float(v), 5) for v in a[keep]] for a in values]


def roc_pr_curves(y: np.ndarray, score: np.ndarray, points: int = 101) -> dict[str, dict[str, list[float]]]:
    """The holdout's ROC and precision-recall curves, thinned to ``points`` points each: derived
    rates only (no score of any one row), small enough to keep with the version and to overlay."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    if len(np.unique(y)) < 2:
        return {}
    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)
    fpr_t, tpr_t = _thin([fpr, tpr], points)
    recall_t, precision_t = _thin([recall[::-1], precision[::-1]], points)
    return {"roc": {"fpr": fpr_t, "tpr": tpr_t}, "pr": {"recall": recall_t, "precision": precision_t}}


def residual_bins(y: np.ndarray, predicted: np.ndarray, bins: int = 30) -> dict[str, list[float]]:
    """The holdout's residuals (actual - predicted) as counts over ``bins`` equal bins between the
    0.5% and 99.5% quantiles (the tails in the end bins), edges rounded to 4 significant digits."""
    residual = np.asarray(y, dtype=float) - np.asarray(predicted, dtype=float)
    residual = residual[np.isfinite(residual)]
    if not len(residual):
        return {}
    lo, hi = (float(v) for v in np.quantile(residual, [0.005, 0.995]))
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    edges = np.unique([float(f"{e:.4g}") for e in np.linspace(lo, hi, bins + 1)])
    if len(edges) < 2:
        return {}
    counts = np.histogram(np.clip(residual, edges[0], edges[-1]), bins=edges)[0]
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}
