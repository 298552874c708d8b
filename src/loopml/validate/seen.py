"""Remembering what was seen across chunks (ids, whole rows) in bounded, flat memory: 8 bytes a key."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.validate.cleaning import as_text

__all__ = ["Seen", "row_hashes"]


def _canonical(series: pd.Series) -> pd.Series:
    """One representation per value whatever the dtype it arrived in (so snapshots and chunks agree)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Series(series.astype("datetime64[ns]").to_numpy().view("int64"), index=series.index)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(values, index=series.index)
    return as_text(series).astype(object).where(series.notna(), "\x00missing")


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """64-bit keys of the rows of ``frame`` over ``columns``: equal rows, equal keys.

    One numeric column (an id) is keyed by its value's bits, not hashed: distinct values never
    collide, and ids that grow give keys that grow, which keeps :class:`Seen` fast.
    """
    if len(columns) == 1 and not pd.api.types.is_object_dtype(frame[columns[0]]):
        values = _canonical(frame[columns[0]])
        if values.dtype.kind in "fi":
            numbers = values.to_numpy()
            return (numbers + 0 if numbers.dtype.kind == "i" else numbers + 0.0).view(np.uint64)
    canonical = pd.DataFrame({c: _canonical(frame[c]) for c in columns}, index=frame.index)
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)


class Seen:
    """A growing set of 64-bit keys kept as one sorted array.

    Examples
    --------
    >>> seen = Seen()
    >>> seen.duplicates(np.array([3, 1, 3], dtype=np.uint64)).tolist()
    [False, False, True]
    >>> seen.duplicates(np.array([1, 2], dtype=np.uint64)).tolist()
    [True, False]
    """

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._keys)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` were added before."""
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return np.asarray(self._keys[pos] == keys)

    def add(self, keys: np.ndarray) -> None:
        """Remember ``keys``."""
        self._insert(np.unique(keys[~self.contains(keys)]))

    def _insert(self, fresh: np.ndarray) -> None:
        """Add keys known to be new and distinct."""
        if len(fresh):
            self._keys = np.sort(np.concatenate([self._keys, fresh]), kind="stable")

    def duplicates(self, keys: np.ndarray) -> np.ndarray:
        """Mark keys seen before or earlier in ``keys``; remember the rest."""
        dup = pd.Series(keys).duplicated(keep="first").to_numpy() | self.contains(keys)
        self._insert(keys[~dup])
        return dup
