"""Drift between a reference profile and current data: PSI, Kolmogorov-Smirnov, chi-square and
Jensen-Shannon, with effect-size thresholds and Benjamini-Hochberg control of the false discovery
rate, so that a large window (where every p-value is tiny) does not flag every feature.

Everything is computed from bin counts in the profile's bins (``profile_counts``), which add up
across chunks or Dask partitions (``combine_counts``), so a window of any size is one pass of
``searchsorted`` / ``bincount`` per column and a merge. On categorical columns the chi-square p-value,
Jensen-Shannon distance and PSI are those Evidently computes (see ``benchmarks/drift.py``); numeric
columns are binned on the reference's deciles, so their KS statistic is a lower bound of the raw one.
:func:`concept_drift` uses labels: whether the positives still get the scores they got in the
reference, for a change of the relation between inputs and outcome that the inputs do not show.

**Levels** (each result's ``level``, the colour a page shows) are absolute, never relative to the
other columns or windows on a page:

- ``alert``: the column drifted (see :func:`compare`: significant after the Benjamini-Hochberg
  correction, ``scipy.stats.false_discovery_control``, and PSI over ``psi_threshold``, 0.25 by
  default, or for a categorical column Jensen-Shannon distance over ``js_threshold``);
- ``warn``: significant, and PSI at least :data:`PSI_WARN` (0.1): a moderate shift;
- ``ok``: anything smaller, or not significant, or in a window under ``min_rows``.

A significant shift under 0.1 stays ``ok`` (with ``significant`` true): in a large window every
real but tiny change is significant, and colouring those teaches people to ignore the colours.
Columns are ranked by ``impact``, their PSI times their importance to the model (the share of its
mean absolute contribution, saved with the profile; 1 for the prediction): a small shift in the
feature the model leans on comes before a large one in a feature it ignores. Significant shifts come
first: a column whose change is within the window's noise is not ranked above one that moved. A
calendar part whose cycle is longer than the window (the day of the week in a one-day window) is not
judged.

Pages colour a level with :data:`LEVEL_COLOURS`, and a PSI value on its own (a heat map of windows)
with :func:`psi_level`, so the same number has the same colour on every page and every week.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopml._durations import parse_duration
from loopml.validate.profile import (
    MISSING,
    ColumnProfile,
    DriftCounts,
    Profile,
    ProfileKind,
    bin_counts,
    profile_counts,
)

__all__ = [
    "LEVEL_COLOURS",
    "PSI_ALERT",
    "PSI_WARN",
    "DriftLevel",
    "DriftResult",
    "benjamini_hochberg",
    "compare",
    "compare_counts",
    "concept_drift",
    "ks_from_bins",
    "psi",
    "psi_level",
]

_EPS = 1e-4
PSI_WARN = 0.1  # a moderate shift
PSI_ALERT = 0.25  # a large one (the default of monitor.psi_threshold)

DriftLevel = Literal["ok", "warn", "alert"]
# The colour of each level on a page (green, amber, red), fixed: never scaled to a page's values.
LEVEL_COLOURS: dict[str, str] = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828"}


def psi_level(value: float, *, warn: float = PSI_WARN, alert: float = PSI_ALERT) -> DriftLevel:
    """The level of a PSI value alone, on the absolute scale (``warn`` from 0.1, ``alert`` over
    ``monitor.psi_threshold``, 0.25 by default); NaN is ``ok``. :func:`compare` also asks for
    significance, so one of its columns can be ``ok`` at a PSI this calls ``warn``.

    Examples
    --------
    >>> [psi_level(v) for v in (0.05, 0.1, 0.3)]
    ['ok', 'warn', 'alert']
    """
    if not value >= warn:  # NaN too
        return "ok"
    return "alert" if value > alert else "warn"


def _fill_empty(shares: np.ndarray, eps: float) -> np.ndarray:
    """Empty bins get ``eps``, or a millionth of the smallest non-empty share when that is at most
    ``eps`` (Evidently's rule, so both tools give the same PSI on the same bins)."""
    positive = shares[shares > 0]
    if len(positive) == len(shares):
        return shares
    smallest = positive.min() if len(positive) else eps
    return np.where(shares > 0, shares, smallest / 1e6 if smallest <= eps else eps)


def psi(reference: np.ndarray, current: np.ndarray, eps: float = _EPS) -> float:
    """Population stability index ``sum((cur - ref) * ln(cur / ref))`` of two share vectors.

    Bins empty on both sides are left out; a bin empty on one side gets a small share (see
    ``_fill_empty``); shares are not renormalised afterwards.

    Examples
    --------
    >>> round(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])), 6)
    0.0
    """
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    seen = (ref > 0) | (cur > 0)
    ref, cur = _fill_empty(ref[seen], eps), _fill_empty(cur[seen], eps)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_from_bins(reference: np.ndarray, current: np.ndarray, n_ref: int, n_cur: int) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic on binned CDFs, with its asymptotic p-value.

    Binning can only hide differences inside a bin, so the statistic is a lower bound of the raw one.
    """
    d = float(np.max(np.abs(np.cumsum(reference) - np.cumsum(current)))) if len(reference) else 0.0
    if n_ref == 0 or n_cur == 0:
        return d, 1.0
    effective = n_ref * n_cur / (n_ref + n_cur)
    return d, float(stats.kstwobign.sf(d * np.sqrt(effective)))


def benjamini_hochberg(p_values: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Which hypotheses are rejected at false discovery rate ``alpha``."""
    m = len(p_values)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p_values)
    passed = p_values[order] <= alpha * np.arange(1, m + 1) / m
    cutoff = np.flatnonzero(passed).max() + 1 if passed.any() else 0
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:cutoff]] = True
    return rejected


def _chi_square(reference: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Goodness of fit of current counts to the reference shares, over bins seen in either."""
    seen = (reference > 0) | (counts > 0)
    n = counts.sum()
    if n == 0 or seen.sum() < 2:
        return 0.0, 1.0
    expected = np.clip(reference[seen], _EPS, None)
    result = stats.chisquare(counts[seen], expected / expected.sum() * n)
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class DriftResult:
    """One column's drift in one window."""

    column: str
    kind: ProfileKind | Literal["concept"]  # "concept": the positives' scores against the reference's
    rows: int
    psi: float
    js: float
    statistic: float
    p_value: float
    drifted: bool
    top_bins: list[dict[str, float | str]]
    level: DriftLevel = "ok"  # the colour: see the module's docstring
    q_value: float = 1.0  # the p-value adjusted for the window's columns (Benjamini-Hochberg)
    significant: bool = False  # q_value under alpha
    source: str = "input"  # input, window, derived, prediction (ColumnProfile.source)
    importance: float | None = None  # share of the model's mean |contribution|; 1 for the prediction
    impact: float = 0.0  # psi x importance (psi alone without importances): the ranking
    judged: bool = True  # False: a calendar part whose cycle is longer than the window
    missing: float | None = None  # share of missing values in the window
    missing_reference: float | None = None  # the same in the reference
    out_of_range: float | None = None  # share of values outside the reference's range (numeric)


def _column(
    profile: ColumnProfile, counts: np.ndarray
) -> tuple[float, float, float, float, list[dict[str, float | str]]]:
    n = int(counts.sum())
    cur = counts / max(n, 1)
    ref = np.asarray(profile.shares, dtype=float)
    if profile.kind == "numeric":
        statistic, p_value = ks_from_bins(ref[:-1], cur[:-1], profile.rows, n)
    else:
        statistic, p_value = _chi_square(ref, counts)
    moved = np.argsort(-np.abs(cur - ref))[:3]
    top = [{"bin": profile.labels[i], "reference": float(ref[i]), "current": float(cur[i])} for i in moved]
    js = float(jensenshannon(ref, cur, base=2)) if n else 0.0
    return psi(ref, cur) if n else 0.0, js, float(statistic), float(p_value), top


def compare(
    profile: Profile,
    current: pd.DataFrame,
    *,
    psi_threshold: float = PSI_ALERT,
    js_threshold: float = 0.1,
    alpha: float = 0.05,
    min_rows: int = 100,
    window: str | None = None,
) -> list[DriftResult]:
    """Drift of every profiled column present in ``current``, ranked by impact (see the module's
    docstring).

    A column drifts when its change is both large (PSI over ``psi_threshold`` for numeric columns,
    Jensen-Shannon distance over ``js_threshold`` for categorical ones) and significant after the
    Benjamini-Hochberg correction at ``alpha`` across all columns of the window. ``window``, its
    length (``1d``), leaves out calendar parts with a longer cycle. Same as
    ``compare_counts(profile, profile_counts(current, profile), ...)``.
    """
    return compare_counts(
        profile,
        profile_counts(current, profile),
        psi_threshold=psi_threshold,
        js_threshold=js_threshold,
        alpha=alpha,
        min_rows=min_rows,
        window=window,
    )


def compare_counts(
    profile: Profile,
    counts: DriftCounts,
    *,
    psi_threshold: float = PSI_ALERT,
    js_threshold: float = 0.1,
    alpha: float = 0.05,
    min_rows: int = 100,
    window: str | None = None,
) -> list[DriftResult]:
    """:func:`compare` from bin counts, e.g. the :func:`~loopml.validate.profile.combine_counts` of
    the :func:`~loopml.validate.profile.profile_counts` of every partition of a window."""
    names = [c for c in profile.columns if c in counts.counts]
    judged = {c: _judged(profile.columns[c], window) for c in names}
    raw = {c: _column(profile.columns[c], counts.counts[c]) for c in names}
    tested = [c for c in names if judged[c]]
    q_values = dict(zip(tested, _adjusted([raw[c][3] for c in tested]), strict=True))
    results = []
    for c in names:
        col = profile.columns[c]
        value_psi, value_js, statistic, p_value, top = raw[c]
        q = q_values.get(c, 1.0)
        sig = bool(q <= alpha and counts.rows >= min_rows and judged[c])
        large = value_psi > psi_threshold if col.kind == "numeric" else value_js > js_threshold
        drifted = bool(sig and large)
        level: DriftLevel = "alert" if drifted else "warn" if sig and value_psi >= PSI_WARN else "ok"
        importance = 1.0 if col.source == "prediction" else profile.importance.get(c)
        weight = importance if importance is not None else (0.0 if profile.importance else 1.0)
        results.append(
            DriftResult(
                c, col.kind, counts.rows, value_psi, value_js, statistic, p_value, drifted, top,
                level=level, q_value=q, significant=sig, source=col.source, importance=importance,
                impact=value_psi * weight if judged[c] else 0.0, judged=judged[c],
                **_quality(col, counts.counts[c], counts.outside.get(c)),
            )
        )  # fmt: skip
    return sorted(results, key=lambda r: (not r.significant, not r.judged, -r.impact, -r.psi))


def _adjusted(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)."""
    if not p_values:
        return []
    return [float(q) for q in stats.false_discovery_control(np.clip(p_values, 0.0, 1.0), method="bh")]


def _judged(column: ColumnProfile, window: str | None) -> bool:
    """False for a calendar part whose cycle is longer than the window (it sees only part of it)."""
    if column.cycle is None or window is None:
        return True
    return parse_duration(window) >= parse_duration(column.cycle)


def _quality(column: ColumnProfile, counts: np.ndarray, outside: float | None) -> dict[str, float | None]:
    """The window's share of missing values (and the reference's) and of values out of range."""
    n = float(counts.sum())
    missing_at = len(counts) - 1 if column.kind == "numeric" else column.categories.index(MISSING)
    return {
        "missing": float(counts[missing_at]) / n if n else None,
        "missing_reference": float(column.shares[missing_at]) if column.shares else None,
        "out_of_range": (outside or 0.0) / n if n and column.kind == "numeric" else None,
    }


def concept_drift(
    profile: Profile,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    js_threshold: float = 0.1,
    alpha: float = 0.05,
    min_positives: int = 5,
) -> DriftResult | None:
    """Concept drift of a binary classifier, from labelled rows: do the positives still get the
    scores they got in the reference?

    When the relation between inputs and outcome changes (fraudsters adapt), the inputs may not move
    at all, yet the new positives land in prediction bins where the reference had few. This compares
    the positives' counts per prediction bin with the reference's (chi-square test of homogeneity,
    bins with no positive on either side left out) and flags drift when the Jensen-Shannon distance
    between the two is over ``js_threshold`` and the p-value under ``alpha``. None when the profile
    has no positives per bin (not a binary task, or profiled before they were kept) or the rows hold
    fewer than ``min_positives`` positives.
    """
    column = profile.columns.get("prediction")
    if column is None or column.kind != "numeric" or not sum(column.positives):
        return None
    y = np.asarray(labels, dtype=float)
    current = bin_counts(pd.Series(np.asarray(scores, dtype=float)[y == 1]), column)
    n = int(current.sum())
    if n < min_positives:
        return None
    reference = np.asarray(column.positives, dtype=float)
    table = np.vstack([reference, current])[:, (reference + current) > 0]
    if table.shape[1] < 2:
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value = (float(v) for v in stats.chi2_contingency(table, correction=False)[:2])
    ref, cur = reference / reference.sum(), current / n
    js = float(jensenshannon(ref, cur, base=2))
    moved = np.argsort(-np.abs(cur - ref))[:3]
    top = [{"bin": column.labels[i], "reference": float(ref[i]), "current": float(cur[i])} for i in moved]
    drifted = bool(p_value < alpha and js > js_threshold)
    value_psi = psi(ref, cur)
    return DriftResult(
        "prediction|label=1", "concept", len(y), value_psi, js, statistic, p_value, drifted, top
    )
