"""Relative window features: an entity's recent behaviour against its own usual behaviour.

``features.windows[].relative_to`` (e.g. ``30d``) adds, for each other window, every aggregate divided
by the same aggregate over that window (``count_1h / count_30d``: a burst of payments on this card),
and the row's own value divided by its mean there (``tx_amount / mean_30d``: an amount unusual for
this card). They are computed in the pipeline (:class:`WindowRatios`) from columns it already holds,
so training, the API and batch give the same values; the compiled scoring path calls :func:`ratio`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["WindowRatios", "ratio"]


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0 or missing (nothing to compare with)."""
    usable = (denominator != 0) & ~np.isnan(denominator)
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan), where=usable)


class WindowRatios(TransformerMixin, BaseEstimator):
    """One column per ``(name, numerator, denominator)`` of ``ratios``: the two columns' :func:`ratio`.

    Examples
    --------
    >>> frame = pd.DataFrame({"amount": [10.0, 5.0, 1.0], "mean_30d": [20.0, 0.0, np.nan]})
    >>> step = WindowRatios(ratios=(("amount_vs_mean_30d", "amount", "mean_30d"),))
    >>> step.fit(frame).transform(frame).ravel().tolist()
    [0.5, nan, nan]
    """

    def __init__(self, ratios: Sequence[tuple[str, str, str]] = ()) -> None:
        self.ratios = ratios

    def fit(self, X: pd.DataFrame, y: Any = None) -> WindowRatios:
        missing = sorted({c for _, *pair in self.ratios for c in pair} - set(X.columns))
        if missing:
            raise ValueError(f"relative window features need column(s) {missing}")
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        columns = [
            ratio(_floats(X[numerator]), _floats(X[denominator])) for _, numerator, denominator in self.ratios
        ]
        return np.column_stack(columns) if columns else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return np.asarray([name for name, _, _ in self.ratios], dtype=object)


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
