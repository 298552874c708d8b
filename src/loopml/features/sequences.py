"""Sequence window features: rolling statistics over each entity's last N readings, point-in-time.

For equipment that reports one row per cycle (an engine per flight, a pump per shift) the signal is
in the trend of its sensors, not in one reading. :class:`CycleWindows` turns rows of
``entity, order, sensor...`` into, for each row, the mean, standard deviation and least-squares slope
of every sensor over that entity's last ``window`` rows up to and including it. A row never sees a
later row of its own entity, nor any row of another entity, so the same code serves training (whole
trajectories), batch scoring and a request that carries an engine's recent readings.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"engine": [1, 1, 1, 2], "cycle": [1, 2, 3, 1], "s": [1.0, 3.0, 8.0, 5.0]})
>>> out = CycleWindows("engine", "cycle", ["s"], window=2).fit(rows).transform(rows)
>>> out["s_mean_2"].tolist(), out["s_slope_2"].tolist()[1:3]
([1.0, 2.0, 5.5, 5.0], [2.0, 5.0])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError

from loopml.errors import DataError

__all__ = ["STATS", "CycleWindows", "informative_columns", "window_matrix"]

STATS = ("mean", "std", "slope")
_BLOCK = 4096  # rows per block of the windowed matrices (4096 x 14 sensors x 30 cycles: 14 MB)


def informative_columns(frame: pd.DataFrame, columns: Sequence[str], min_distinct: int = 3) -> list[str]:
    """The ``columns`` with at least ``min_distinct`` distinct values: the others are constant sensors
    (or two-level quantisation noise around a constant) and carry no information.

    >>> informative_columns(pd.DataFrame({"a": [1, 1, 1], "b": [1, 2, 3]}), ["a", "b"])
    ['b']
    """
    return [c for c in columns if frame[c].nunique(dropna=True) >= min_distinct]


def _positions(entity: np.ndarray) -> np.ndarray:
    """For entity-sorted rows, each row's position within its entity's run (0, 1, 2, ...)."""
    starts = np.r_[True, entity[1:] != entity[:-1]]
    index = np.arange(len(entity))
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def window_matrix(values: np.ndarray, positions: np.ndarray, window: int) -> np.ndarray:
    """Row i holds the last ``window`` values up to row i of its own entity, NaN-padded on the left.

    ``values`` (one column, or rows x columns) are entity-sorted; ``positions`` come from the same
    sort (see :func:`_positions`). A 2-D input gives rows x columns x window.

    >>> window_matrix(np.array([1.0, 2.0, 9.0]), np.array([0, 1, 0]), 2).tolist()
    [[nan, 1.0], [1.0, 2.0], [nan, 9.0]]
    """
    values = values.astype(float)
    padded = np.concatenate([np.full((window - 1, *values.shape[1:]), np.nan), values])
    view = sliding_window_view(padded, window, axis=0)
    keep = np.arange(window)[None, :] >= (window - 1 - np.minimum(positions, window - 1))[:, None]
    if values.ndim == 2:
        keep = keep[:, None, :]
    return np.where(keep, view, np.nan)


def _stats(matrix: np.ndarray, times: np.ndarray, stats: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-row, per-column mean, sample standard deviation and slope (per unit of ``times``) of a
    rows x columns x window matrix; ``times`` is rows x window."""
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # one-reading windows: std and slope are NaN
        mean = np.nanmean(matrix, axis=2)
        if "mean" in stats:
            out["mean"] = mean
        if "std" in stats:
            out["std"] = np.nanstd(matrix, axis=2, ddof=1)
        if "slope" in stats:
            centred_t = times - np.nanmean(times, axis=1, keepdims=True)
            covariance = np.nansum(centred_t[:, None, :] * (matrix - mean[:, :, None]), axis=2)
            out["slope"] = covariance / np.nansum(centred_t**2, axis=1)[:, None]
    return out


class CycleWindows(TransformerMixin, BaseEstimator):
    """Rolling mean, standard deviation and slope of each column over an entity's last ``window`` rows.

    ``fit`` keeps the ``columns`` (default: every numeric column but ``entity`` and ``order``) that have
    at least ``min_distinct`` distinct values, dropping constant sensors. ``transform`` returns, in the
    input's row order: ``order`` (the entity's age), each kept column's current value, and
    ``<column>_<stat>_<window>`` for each stat. The entity id itself is never a feature.
    """

    def __init__(
        self,
        entity: str,
        order: str,
        columns: Sequence[str] | None = None,
        window: int = 30,
        stats: Sequence[str] = STATS,
        min_distinct: int = 3,
    ) -> None:
        self.entity = entity
        self.order = order
        self.columns = columns
        self.window = window
        self.stats = stats
        self.min_distinct = min_distinct

    def fit(self, X: pd.DataFrame, y: Any = None) -> CycleWindows:
        """Learn which columns are informative (and check the configuration against ``X``)."""
        self._check(X, self.entity, self.order)
        unknown = sorted(set(self.stats) - set(STATS))
        if unknown or self.window < 2:
            raise DataError(
                f"sequence windows: window must be >= 2 and stats among {', '.join(STATS)}; "
                f"got window={self.window}, stats={list(self.stats)}."
            )
        candidates = (
            list(self.columns)
            if self.columns is not None
            else [
                c
                for c in X.columns
                if c not in (self.entity, self.order) and pd.api.types.is_numeric_dtype(X[c])
            ]
        )
        self._check(X, *candidates)
        text = [c for c in candidates if not pd.api.types.is_numeric_dtype(X[c])]
        if text:
            raise DataError(f"sequence windows need numeric columns; {', '.join(text)} are not numeric.")
        self.columns_ = informative_columns(X, candidates, self.min_distinct)
        self.dropped_ = [c for c in candidates if c not in self.columns_]
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``order``, the kept columns, then their window statistics."""
        self._fitted()
        stats = [f"{c}_{s}_{self.window}" for s in STATS if s in self.stats for c in self.columns_]
        return np.asarray([self.order, *self.columns_, *stats], dtype=object)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The window features of every row of ``X`` (any row order; entities need not be contiguous)."""
        self._fitted()
        self._check(X, self.entity, self.order, *self.columns_)
        sort = np.lexsort((X[self.order].to_numpy(), X[self.entity].to_numpy()))
        positions = _positions(X[self.entity].to_numpy()[sort])
        order = X[self.order].to_numpy(dtype=float)[sort]
        values = X[self.columns_].to_numpy(dtype=float)[sort]
        names = list(self.get_feature_names_out())
        parts = [np.empty((0, len(names)))]
        for start in range(0, len(sort), _BLOCK):  # bounded memory: rows x columns x window per block
            context = max(start - self.window + 1, 0)  # the block's first rows look back into these
            rows, skip = slice(context, start + _BLOCK), start - context
            times = window_matrix(order[rows], positions[rows], self.window)
            stats = _stats(window_matrix(values[rows], positions[rows], self.window), times, self.stats)
            block = np.column_stack([order[rows], values[rows], *(stats[s] for s in STATS if s in stats)])
            parts.append(block[skip:])
        unsort = np.empty_like(sort)
        unsort[sort] = np.arange(len(sort))
        matrix = np.concatenate(parts)[unsort]
        return pd.DataFrame(matrix, columns=pd.Index(names, dtype=object), index=X.index, copy=False)

    def _fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise NotFittedError("CycleWindows is not fitted yet; call fit first.")

    @staticmethod
    def _check(X: pd.DataFrame, *columns: str) -> None:
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise DataError(
                f"sequence windows need column(s) {', '.join(missing)}; got {', '.join(map(str, X.columns))}."
            )
