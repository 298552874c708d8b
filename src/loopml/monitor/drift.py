"""Drift between a reference profile and current data: PSI, Kolmogorov-Smirnov, chi-square and
Jensen-Shannon, with effect-size thresholds and Benjamini-Hochberg control of the false discovery
rate, so that a large window (where every p-value is tiny) does not flag every feature."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopml.validate.profile import ColumnProfile, Profile, bin_counts

__all__ = ["DriftResult", "benjamini_hochberg", "compare", "ks_from_bins", "psi"]

_EPS = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, eps: float = _EPS) -> float:
    """Population stability index of two share vectors (empty bins floored at ``eps``).

    Examples
    --------
    >>> round(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])), 6)
    0.0
    """
    ref, cur = np.clip(reference, eps, None), np.clip(current, eps, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
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
    kind: str
    rows: int
    psi: float
    js: float
    statistic: float
    p_value: float
    drifted: bool
    top_bins: list[dict[str, float | str]]


def _column(
    profile: ColumnProfile, values: pd.Series
) -> tuple[float, float, float, float, list[dict[str, float | str]]]:
    counts = bin_counts(values, profile)
    n = int(counts.sum())
    cur = counts / max(n, 1)
    ref = np.asarray(profile.shares, dtype=float)
    if profile.kind == "numeric":
        statistic, p_value = ks_from_bins(ref[:-1], cur[:-1], profile.rows, n)
    else:
        statistic, p_value = _chi_square(ref, counts)
    moved = np.argsort(-np.abs(cur - ref))[:3]
    top = [{"bin": profile.labels[i], "reference": float(ref[i]), "current": float(cur[i])} for i in moved]
    return psi(ref, cur), float(jensenshannon(ref, cur, base=2)), float(statistic), float(p_value), top


def compare(
    profile: Profile,
    current: pd.DataFrame,
    *,
    psi_threshold: float = 0.2,
    js_threshold: float = 0.1,
    alpha: float = 0.05,
    min_rows: int = 100,
) -> list[DriftResult]:
    """Drift of every profiled column present in ``current``, most drifted first.

    A column drifts when its change is both large (PSI over ``psi_threshold`` for numeric columns,
    Jensen-Shannon distance over ``js_threshold`` for categorical ones) and significant after the
    Benjamini-Hochberg correction at ``alpha`` across all columns of the window.
    """
    names = [c for c in profile.columns if c in current.columns]
    raw = {c: _column(profile.columns[c], current[c]) for c in names}
    p_values = np.array([raw[c][3] for c in names])
    significant = benjamini_hochberg(p_values, alpha)
    results = []
    for c, sig in zip(names, significant, strict=True):
        col = profile.columns[c]
        value_psi, value_js, statistic, p_value, top = raw[c]
        large = value_psi > psi_threshold if col.kind == "numeric" else value_js > js_threshold
        drifted = bool(sig and large and len(current) >= min_rows)
        results.append(
            DriftResult(c, col.kind, len(current), value_psi, value_js, statistic, p_value, drifted, top)
        )
    return sorted(results, key=lambda r: (not r.drifted, -(r.psi if r.kind == "numeric" else r.js)))
