"""The label-free estimate of a binary classifier's metrics, with a confidence interval.

Before its labels arrive, a window's metrics can be estimated from its scores alone if the scores
are calibrated probabilities (confidence-based performance estimation, as NannyML's CBPE does):
each row is then a positive with probability ``p``. Rather than plugging expected counts into the
metric's formula (which biases a non-linear metric such as average precision), the estimate draws
the window's labels :data:`DRAWS` times from those probabilities, computes each metric on each
draw exactly as it is computed on real labels (rows ranked by the model's own score, tied scores
together, as scikit-learn does), and reports the mean and the central :data:`CONFIDENCE` interval
of the draws. A small window, or one with few expected positives, gets a wide interval by itself.

The interval covers the sampling noise of the labels under the calibration; it cannot cover a
change of the relation between inputs and outcome (concept drift), which no label-free method
can see: :mod:`loopml.monitor.reliability` checks the estimate against the labels as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "DRAWS",
    "METRICS",
    "Estimate",
    "expected_metrics",
    "metrics_of_labels",
    "positives_p_value",
    "widened",
]

CONFIDENCE = 0.9
DRAWS = 200
METRICS = ("roc_auc", "average_precision", "precision", "recall", "positive_rate")
_BLOCK = 2_000_000  # draws x rows per block of the simulation: bounded memory for any window


@dataclass(frozen=True)
class Estimate:
    """The estimated metrics of some rows, each with its interval (NaN where undefined: no
    expected positive, or no negative)."""

    values: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    rows: int
    expected_positives: float
    confidence: float = CONFIDENCE
    spread: dict[str, float] = field(default_factory=dict)  # the draws' standard deviation per metric

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "confidence": self.confidence,
            "rows": self.rows,
            "expected_positives": self.expected_positives,
        }


@dataclass(frozen=True)
class _Ranking:
    """Rows ranked by score, highest first: where each group of tied scores ends (None when no two
    scores tie), how many rows are ranked up to each group's end, and how many rows the threshold
    flags (a prefix of the ranking)."""

    order: np.ndarray
    ends: np.ndarray | None
    seen: np.ndarray
    flagged: int

    @classmethod
    def of(cls, score: np.ndarray, threshold: float) -> _Ranking:
        order = np.argsort(-score, kind="stable")
        ranked = score[order]
        ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True]) if len(ranked) else np.array([], int)
        distinct = len(ends) == len(ranked)
        seen = (ends + 1).astype(float)
        return cls(order, None if distinct else ends, seen, int(np.count_nonzero(score >= threshold)))


def _metrics(labels: np.ndarray, ranking: _Ranking) -> dict[str, np.ndarray]:
    """Every metric for each row of ``labels`` (draws x rows, in ranking order).

    Per group ``g`` of tied scores with ``k_g`` positives among ``m_g`` rows, ``t_g`` positives and
    ``s_g`` rows ranked up to its end: average precision is ``sum k_g t_g / s_g / P`` and ROC AUC is
    ``sum k_g (negatives below g + m_g - k_g over 2) / (P N)``, scikit-learn's values."""
    n = labels.shape[1]
    cum = np.cumsum(labels, axis=1, dtype=np.int64)
    tp = cum if ranking.ends is None else cum[:, ranking.ends]
    positives = tp[:, -1].astype(float) if n else np.zeros(len(labels))
    negatives = n - positives
    gained = np.diff(tp, axis=1, prepend=0)
    together = np.sum(gained * tp, axis=1, dtype=np.int64).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = ((gained * tp) @ (1.0 / ranking.seen)) / positives
        # sum k_g (N - s_g + t_g) + (k_g m_g - k_g^2) / 2, with m_g = 1 for untied scores
        ties: float | np.ndarray = 0.0
        if ranking.ends is not None:
            size = np.diff(ranking.seen, prepend=0.0)
            ties = (gained @ size - np.sum(gained * gained, axis=1, dtype=np.int64)) / 2
        auc = (negatives * positives - gained @ ranking.seen + together + ties) / (positives * negatives)
        caught = cum[:, ranking.flagged - 1].astype(float) if ranking.flagged else np.zeros(len(labels))
        precision = caught / ranking.flagged if ranking.flagged else np.full(len(labels), np.nan)
        recall = caught / positives
    auc[(positives == 0) | (negatives == 0)] = np.nan
    ap[positives == 0] = np.nan
    recall[positives == 0] = np.nan
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "precision": precision,
        "recall": recall,
        "positive_rate": positives / max(n, 1),
    }


def metrics_of_labels(score: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """The realized metrics of ``score`` against 0/1 ``labels``, computed as each draw of the estimate
    is (so an estimate and the truth are compared on the same definition)."""
    s = np.asarray(score, dtype=float)
    ranking = _Ranking.of(s, threshold)
    y = np.asarray(labels, dtype=float)[ranking.order] == 1
    return {k: float(v[0]) for k, v in _metrics(y[None, :], ranking).items()}


def expected_metrics(
    score: np.ndarray,
    probability: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    draws: int = DRAWS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """The estimate of the metrics of rows scored ``score`` whose chance of being positive is
    ``probability`` (the calibrated score; ``score`` itself when None).

    Examples
    --------
    >>> sure = expected_metrics(np.array([0.9, 0.8, 0.1, 0.0]), np.array([1.0, 1.0, 0.0, 0.0]))
    >>> sure.values["average_precision"], sure.intervals["roc_auc"]
    (1.0, (1.0, 1.0))
    """
    s = np.asarray(score, dtype=float)
    p = np.clip(s if probability is None else np.asarray(probability, dtype=float), 0.0, 1.0)
    ranking = _Ranking.of(s, threshold)
    q = p[ranking.order]
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK // max(len(q), 1))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, draws, block):
        labels = rng.random((min(block, draws - start), len(q)), dtype=np.float32) < q
        parts.append(_metrics(labels, ranking))
    tails = ((1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100)
    values, intervals, spread = {}, {}, {}
    for metric in METRICS:
        drawn = np.concatenate([part[metric] for part in parts])
        drawn = drawn[np.isfinite(drawn)]
        if not len(drawn):
            values[metric], intervals[metric], spread[metric] = np.nan, (np.nan, np.nan), np.nan
            continue
        low, high = np.percentile(drawn, tails)
        values[metric] = float(drawn.mean())
        intervals[metric] = (float(low), float(high))
        spread[metric] = float(drawn.std())
    return Estimate(values, intervals, len(s), float(p.sum()), confidence, spread)


def positives_p_value(labels: np.ndarray, probability: np.ndarray) -> float:
    """Two-sided p-value of the count of positives among ``labels`` when each row is positive with
    its ``probability`` (a Poisson-binomial count: its normal approximation once its variance is
    large enough, else a Poisson test on its mean)."""
    y, p = np.asarray(labels, dtype=float), np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    observed, mean, variance = float(y.sum()), float(p.sum()), float((p * (1 - p)).sum())
    if variance >= 25:
        z = (abs(observed - mean) - 0.5) / np.sqrt(variance)
        return float(min(1.0, 2 * stats.norm.sf(max(z, 0.0))))
    if mean <= 0:
        return 1.0 if observed == 0 else 0.0
    low, high = stats.poisson.cdf(observed, mean), stats.poisson.sf(observed - 1, mean)
    return float(min(1.0, 2 * min(low, high)))


def widened(estimate: Estimate, values: dict[str, list[float]]) -> Estimate:
    """``estimate`` with its intervals widened by a second, independent source of uncertainty: the
    spread of ``values`` (per metric, the estimate under other plausible calibrations). Each side's
    half-width is the two sources' half-widths added in quadrature; the central value is kept."""
    tails = ((1 - estimate.confidence) / 2 * 100, (1 + estimate.confidence) / 2 * 100)
    intervals, spread = dict(estimate.intervals), dict(estimate.spread)
    for metric, found in values.items():
        v, drawn = estimate.values.get(metric, np.nan), np.asarray(found, dtype=float)
        drawn = drawn[np.isfinite(drawn)]
        if not np.isfinite(v) or len(drawn) < 2:
            continue
        low, high = intervals[metric]
        other_low, other_high = np.percentile(drawn, tails)
        below = np.hypot(v - low, max(v - other_low, 0.0))
        above = np.hypot(high - v, max(other_high - v, 0.0))
        intervals[metric] = (float(max(v - below, 0.0)), float(min(v + above, 1.0)))
        spread[metric] = float(np.hypot(spread.get(metric, 0.0), drawn.std()))
    return Estimate(
        estimate.values, intervals, estimate.rows, estimate.expected_positives, estimate.confidence, spread
    )
