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
        self._buffer = np.empty(0, dtype=np.uint64)  # sorted keys in [:_size], room to grow after
        self._size = 0

    @property
    def _keys(self) -> np.ndarray:
        return self._buffer[: self._size]

    def __len__(self) -> int:
        return self._size

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` were added before."""
        if not self._size or not len(keys) or keys.min() > self._buffer[self._size - 1]:
            return np.zeros(len(keys), dtype=bool)  # growing ids: all past the largest key so far
        known = self._keys
        pos = np.minimum(np.searchsorted(known, keys), self._size - 1)
        return np.asarray(known[pos] == keys)

    def add(self, keys: np.ndarray) -> None:
        """Remember ``keys``."""
        self._insert(np.unique(keys[~self.contains(keys)]))

    def _insert(self, fresh: np.ndarray) -> None:
        """Add keys known to be new and distinct."""
        if not len(fresh):
            return
        if len(fresh) > 1 and not bool(np.all(fresh[1:] > fresh[:-1])):
            fresh = np.sort(fresh)
        if self._size and fresh[0] < self._buffer[self._size - 1]:  # interleaved: merge, as before
            merged = np.sort(np.concatenate([self._keys, fresh]), kind="stable")
            self._buffer, self._size = merged, len(merged)
            return
        end = self._size + len(fresh)
        if end > len(self._buffer):  # amortised growth: appending growing ids copies each key O(1) times
            grown = np.empty(max(end, 2 * len(self._buffer)), dtype=np.uint64)
            grown[: self._size] = self._keys
            self._buffer = grown
        self._buffer[self._size : end] = fresh
        self._size = end

    def duplicates(self, keys: np.ndarray) -> np.ndarray:
        """Mark keys seen before or earlier in ``keys``; remember the rest."""
        increasing = len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1]))  # growing ids: none repeats
        dup = self.contains(keys)
        if not increasing:
            dup |= pd.Series(keys).duplicated(keep="first").to_numpy()
        self._insert(keys[~dup])
        return dup
