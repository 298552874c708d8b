"""Events as every window state takes them: columns of plain arrays, not a DataFrame.

One :class:`Events` is a request's records, a batch chunk, or rows of the store warming a state. It
holds what window features read from an event: its time (epoch milliseconds, exactly as training
converts the event-time column), its id (the key that makes adding an event idempotent), the key of
each entity it belongs to, and each aggregated column's value (NaN while unknown: a label not back
yet). Built from a frame (:meth:`Events.from_frame`) or from coerced records
(:meth:`Events.from_rows`), the same events give the same arrays, so every path aggregates the same
numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from loopml.features.windows import WindowSpec

__all__ = ["Events", "event_millis", "frame_millis", "is_missing_key", "key_text"]


def frame_millis(times: pd.Series) -> np.ndarray:
    """A datetime column as epoch milliseconds (the conversion training uses)."""
    values = times.to_numpy()
    if not np.issubdtype(values.dtype, np.datetime64):
        values = pd.to_datetime(times).to_numpy()
    return values.astype("datetime64[ms]").astype(np.int64)


def event_millis(times: Sequence[datetime]) -> np.ndarray:
    """Naive datetimes as epoch milliseconds, exactly as the frame path converts a datetime column."""
    return np.array(times, dtype="datetime64[us]").astype("datetime64[ms]").astype(np.int64)


def is_missing_key(key: Any) -> bool:
    """Whether an entity key (or id) is absent: None, NaN or pandas' NA."""
    return key is None or key is pd.NA or (isinstance(key, float) and math.isnan(key))


def key_text(key: Any) -> str:
    """One text per key value, whichever path produced it: ``12``, ``12.0`` and ``np.int64(12)`` all
    give ``"12"`` (a coerced integer column holds floats), text stays itself."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool | np.bool_):
        return str(bool(key))
    if isinstance(key, float | np.floating) and float(key).is_integer():
        return str(int(key))
    if isinstance(key, int | np.integer):
        return str(int(key))
    return repr(float(key)) if isinstance(key, float | np.floating) else str(key)


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass(frozen=True)
class Events:
    """Events for a window state (see the module docstring).

    ``times``: int64 epoch ms; ``ids``: one id per event, or None without an id column (the state
    numbers them); ``keys``: entity column -> each event's key (None or NaN: no such entity);
    ``values``: aggregated column -> float64 values (NaN: unknown).
    """

    times: np.ndarray
    ids: np.ndarray | None
    keys: Mapping[str, Sequence[Any]]
    values: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, specs: Sequence[WindowSpec], event_time: str, id_column: str | None
    ) -> Events:
        """The events of a frame's rows; a value column the frame lacks is unknown (NaN)."""
        ids = frame[id_column].to_numpy() if id_column and id_column in frame.columns else None
        keys = {s.entity: frame[s.entity].tolist() for s in specs}
        values = {
            s.column: _numbers(frame[s.column]) if s.column in frame.columns else np.full(len(frame), np.nan)
            for s in specs
            if s.column is not None
        }
        return cls(frame_millis(frame[event_time]), ids, keys, values)

    @classmethod
    def from_rows(
        cls,
        times: np.ndarray,
        rows: Sequence[Mapping[str, Any]],
        specs: Sequence[WindowSpec],
        id_column: str | None,
    ) -> Events:
        """The events of coerced records (numbers as floats; a value not sent is NaN), ``times`` from
        :func:`event_millis`."""
        ids = np.array([row[id_column] for row in rows]) if id_column else None
        keys = {s.entity: [row.get(s.entity) for row in rows] for s in specs}
        values = {}
        for spec in specs:
            if spec.column is not None:
                found = (row.get(spec.column) for row in rows)
                values[spec.column] = np.fromiter(
                    (math.nan if v is None else v for v in found), dtype=np.float64, count=len(rows)
                )
        return cls(np.asarray(times, dtype=np.int64), ids, keys, values)

    def take(self, positions: np.ndarray) -> Events:
        """The events at ``positions`` (indices or a boolean mask), in that order."""
        index = np.flatnonzero(positions) if positions.dtype == bool else positions
        return Events(
            self.times[index],
            self.ids[index] if self.ids is not None else None,
            {name: [keys[i] for i in index.tolist()] for name, keys in self.keys.items()},
            {name: values[index] for name, values in self.values.items()},
        )

    def chunks(self, size: int) -> list[Events]:
        """These events in consecutive pieces of at most ``size``."""
        if len(self) <= size:
            return [self]
        return [
            self.take(np.arange(start, min(start + size, len(self)))) for start in range(0, len(self), size)
        ]
