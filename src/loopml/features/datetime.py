"""Datetime columns as numeric parts (hour, day of week, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["DatetimeParts"]

_PARTS = {
    "hour": lambda s: s.dt.hour,
    "dayofweek": lambda s: s.dt.day_of_week,
    "day": lambda s: s.dt.day,
    "month": lambda s: s.dt.month,
    "is_weekend": lambda s: (s.dt.day_of_week >= 5).astype("int64"),
    "is_night": lambda s: ((s.dt.hour < 6) | (s.dt.hour >= 22)).astype("int64"),
}


class DatetimeParts(TransformerMixin, BaseEstimator):
    """Expand each datetime column into the named parts; missing times give NaN.

    Examples
    --------
    >>> frame = pd.DataFrame({"t": pd.to_datetime(["2026-01-03 23:30"])})
    >>> DatetimeParts(parts=("hour", "is_weekend")).fit(frame).transform(frame).tolist()
    [[23.0, 1.0]]
    """

    def __init__(self, parts: Sequence[str] = ("hour", "dayofweek")) -> None:
        self.parts = parts

    def fit(self, X: pd.DataFrame, y: Any = None) -> DatetimeParts:
        unknown = [p for p in self.parts if p not in _PARTS]
        if unknown:
            raise ValueError(f"unknown datetime part(s) {unknown}; valid: {sorted(_PARTS)}")
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        out: list[np.ndarray] = []
        for column in self.feature_names_in_:
            values = pd.to_datetime(X[column], errors="coerce")
            out.extend(_PARTS[p](values).astype("float64").to_numpy() for p in self.parts)
        return np.column_stack(out) if out else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return np.asarray([f"{c}_{p}" for c in self.feature_names_in_ for p in self.parts], dtype=object)
