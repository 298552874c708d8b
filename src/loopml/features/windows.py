"""Entity window features: count, sum, mean and max of a column per entity over time windows.

Computed point-in-time: the features of an event at time ``t`` use only that entity's events in
``[t - delay - window, t - delay)``, so nothing at or after the event (or inside the label delay)
leaks in. Training (:func:`window_features`, vectorised over a whole frame) and serving
(:class:`EntityHistory`, one request at a time) call the same :func:`_aggregate` on the same
ordered slices of history, so they give bit-identical values.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml._durations import parse_duration

__all__ = ["EntityHistory", "WindowSpec", "event_millis", "parse_duration", "window_features"]

AGGS = ("count", "sum", "mean", "max")


@dataclass(frozen=True)
class WindowSpec:
    """One group of window features: ``aggs`` of ``column`` per ``entity`` over each window."""

    entity: str
    column: str | None
    aggs: tuple[str, ...]
    windows: tuple[str, ...]
    label_delay: str | None = None

    @property
    def prefix(self) -> str:
        return f"{self.entity}__{self.column or 'events'}"

    @property
    def delay_ms(self) -> int:
        return parse_duration(self.label_delay) if self.label_delay else 0

    @property
    def names(self) -> list[str]:
        """Feature names, e.g. ``customer_id__tx_amount__sum_7d``."""
        return [f"{self.prefix}__{agg}_{w}" for w in self.windows for agg in self.aggs]


def _aggregate(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, aggs: Sequence[str]
) -> dict[str, np.ndarray]:
    """Aggregate ``values[lo[i]:hi[i]]`` for each i; NaN values (unknown labels) are skipped."""
    known = ~np.isnan(values)
    edges = np.column_stack([lo, hi]).ravel()
    count = np.add.reduceat(np.append(known.astype(np.float64), 0.0), edges)[::2]
    count[lo >= hi] = 0.0
    out: dict[str, np.ndarray] = {"count": count}
    if {"sum", "mean"} & set(aggs):
        total = np.add.reduceat(np.append(np.where(known, values, 0.0), 0.0), edges)[::2]
        total[count == 0] = 0.0
        out["sum"] = total
        out["mean"] = np.divide(total, count, out=np.full(len(count), np.nan), where=count > 0)
    if "max" in aggs:
        peak = np.maximum.reduceat(np.append(np.where(known, values, -np.inf), -np.inf), edges)[::2]
        out["max"] = np.where(count > 0, peak, np.nan)
    return {agg: out[agg] for agg in aggs}


def _millis(times: pd.Series) -> np.ndarray:
    values = times.to_numpy()
    if not np.issubdtype(values.dtype, np.datetime64):
        values = pd.to_datetime(times).to_numpy()
    return values.astype("datetime64[ms]").astype(np.int64)


def event_millis(times: Sequence[datetime]) -> np.ndarray:
    """Naive datetimes as epoch milliseconds, exactly as the frame path converts a datetime column."""
    return np.array(times, dtype="datetime64[us]").astype("datetime64[ms]").astype(np.int64)


@dataclass
class _Events:
    """One entity's events, sorted by (time, id): the unit both paths aggregate over."""

    times: np.ndarray
    ids: np.ndarray
    values: np.ndarray

    def merged(self, times: np.ndarray, ids: np.ndarray, values: np.ndarray) -> _Events:
        t, i, v = (np.concatenate(p) for p in ((self.times, times), (self.ids, ids), (self.values, values)))
        order = np.lexsort((i, t))
        return _Events(t[order], i[order], v[order])

    def relabelled(self, times: np.ndarray, ids: np.ndarray, values: np.ndarray) -> tuple[_Events, int]:
        """These events with the given (non-NaN) values for the ones found by (time, id); how many changed."""
        new, changed = self.values, 0
        lo = np.searchsorted(self.times, times, side="left")
        hi = np.searchsorted(self.times, times, side="right")
        for start, end, event_id, value in zip(
            lo.tolist(), hi.tolist(), ids.tolist(), values.tolist(), strict=True
        ):
            if np.isnan(value):
                continue
            for at in range(start, end):
                if self.ids[at] == event_id and new[at] != value:
                    new = new.copy() if new is self.values else new
                    new[at], changed = value, changed + 1
        return (self if changed == 0 else _Events(self.times, self.ids, new)), changed

    def inserted(self, time: int, event_id: Any, value: float) -> _Events:
        """One more event at its (time, id) place: what :meth:`merged` gives for it, without a sort."""
        lo = int(np.searchsorted(self.times, time, side="left"))
        hi = int(np.searchsorted(self.times, time, side="right"))
        at = lo + int(np.searchsorted(self.ids[lo:hi], event_id, side="left"))

        def put(array: np.ndarray, item: Any) -> np.ndarray:
            return np.concatenate((array[:at], np.array([item]), array[at:]))  # promotes as merged() does

        return _Events(put(self.times, time), put(self.ids, event_id), put(self.values, value))

    def features(self, query_ms: np.ndarray, spec: WindowSpec) -> dict[str, np.ndarray]:
        """Every window of ``spec`` in one aggregation (each slice is reduced on its own, so the values
        are those of one call per window; one call keeps a one-row request cheap)."""
        out: dict[str, np.ndarray] = {}
        n, spans = len(query_ms), np.array([parse_duration(w) for w in spec.windows], dtype=np.int64)
        cut = query_ms - spec.delay_ms
        end = np.searchsorted(self.times, cut, side="left")
        start = np.searchsorted(self.times, (cut[None, :] - spans[:, None]).ravel(), side="left")
        aggregated = _aggregate(self.values, start, np.tile(end, len(spans)), spec.aggs)
        for k, window in enumerate(spec.windows):
            for agg, column in aggregated.items():
                out[f"{spec.prefix}__{agg}_{window}"] = column[k * n : (k + 1) * n]
        return out


def _empty(spec: WindowSpec, n: int) -> dict[str, np.ndarray]:
    return {
        name: np.zeros(n) if name.rsplit("__", 1)[1].startswith(("count", "sum")) else np.full(n, np.nan)
        for name in spec.names
    }


class EntityHistory:
    """Events per entity, appended as they arrive, queried point-in-time.

    The same object serves training (filled with a whole snapshot, then queried for every row) and
    serving (filled at start-up, queried and extended one request at a time). Events are
    de-duplicated by the id column, so replaying an event already known changes nothing.
    """

    def __init__(self, specs: Sequence[WindowSpec], event_time: str, id_column: str | None = None) -> None:
        self.specs = tuple(specs)
        self.event_time = event_time
        self.id_column = id_column
        self._lock = threading.Lock()
        self._seen: set[Any] = set()
        self._next_id = 0
        self._events: dict[WindowSpec, dict[Any, _Events]] = {spec: {} for spec in self.specs}

    @property
    def columns(self) -> list[str]:
        """Raw columns the history needs from each event."""
        cols = [self.event_time, *([self.id_column] if self.id_column else [])]
        for spec in self.specs:
            cols += [spec.entity, *([spec.column] if spec.column else [])]
        return list(dict.fromkeys(cols))

    @property
    def names(self) -> list[str]:
        """Every feature name, in a stable order."""
        return [name for spec in self.specs for name in spec.names]

    def _ids(self, rows: pd.DataFrame) -> np.ndarray:
        if self.id_column:
            return rows[self.id_column].to_numpy()
        ids = np.arange(self._next_id, self._next_id + len(rows))
        self._next_id += len(rows)
        return ids

    def extend(self, frame: pd.DataFrame) -> int:
        """Add events (rows holding :attr:`columns`); ids already seen are skipped. Returns rows added."""
        required = [self.event_time, *(spec.entity for spec in self.specs)]
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"events lack column(s) {missing}")
        with self._lock:
            rows = frame.reindex(columns=self.columns)  # a value not sent (a label) is unknown: NaN
            if self.id_column:
                ids = rows[self.id_column]
                seen = self._seen
                fresh = np.fromiter((i not in seen for i in ids.tolist()), dtype=bool, count=len(ids))
                rows = rows[fresh & ~ids.duplicated().to_numpy()]
                self._seen.update(rows[self.id_column].tolist())
            if len(rows):
                self._add(rows)
            return len(rows)

    def extend_rows(self, times_ms: np.ndarray, rows: Sequence[Mapping[str, Any]]) -> int:
        """Light path of :meth:`extend` for the few events of a request, without pandas.

        ``times_ms`` from :func:`event_millis`; each row maps the id, entity and value columns to
        coerced values (numbers as floats, a value not sent is NaN). The result is the history
        :meth:`extend` builds from the same rows.
        """
        added = 0
        with self._lock:
            for when, row in zip(times_ms.tolist(), rows, strict=True):
                if self.id_column:
                    event_id = row[self.id_column]
                    if event_id in self._seen:
                        continue
                    self._seen.add(event_id)
                else:
                    event_id, self._next_id = self._next_id, self._next_id + 1
                for spec in self.specs:
                    value = 1.0 if spec.column is None else row.get(spec.column)
                    self._insert(spec, row[spec.entity], when, event_id, np.nan if value is None else value)
                added += 1
        return added

    def learn(self, frame: pd.DataFrame) -> int:
        """Late values (labels) of events: known events take them, unknown ones are added with them.

        ``frame`` holds :attr:`columns` (the id column is required); a NaN value teaches nothing.
        Each changed entity gets new arrays in one assignment, so a concurrent query sees the old
        or the new values, never a mix. Returns how many events learnt a value (once per window
        group that aggregates it, for known events).
        """
        if not self.id_column:
            raise ValueError("learning late values needs the id column")
        rows = frame.reindex(columns=self.columns)
        valued = [s for s in self.specs if s.column is not None and s.column in frame.columns]
        with self._lock:
            seen = self._seen
            known = np.fromiter(
                (i in seen for i in rows[self.id_column].tolist()), dtype=bool, count=len(rows)
            )
        # an event labelled twice (a corrected label) takes its last label, as a known event does below
        fresh = rows[~known & ~rows[self.id_column].duplicated(keep="last").to_numpy()]
        changed = (
            int(np.any([~np.isnan(_values(fresh, spec)) for spec in valued], axis=0).sum()) if valued else 0
        )
        self.extend(fresh)  # events never scored here (another replica's): added with their values
        rows = rows[known]
        times, ids = _millis(rows[self.event_time]), rows[self.id_column].to_numpy()
        with self._lock:
            for spec in valued:
                values, store = _values(rows, spec), self._events[spec]
                for key, positions in _groups(rows[spec.entity]).items():
                    old = store.get(key)
                    if old is not None:
                        new, count = old.relabelled(times[positions], ids[positions], values[positions])
                        store[key], changed = new, changed + count
        return changed

    def _insert(self, spec: WindowSpec, key: Any, when: int, event_id: Any, value: float) -> None:
        store = self._events[spec]
        old = store.get(key)
        if old is None:
            one = (
                np.array([when], dtype=np.int64),
                np.array([event_id]),
                np.array([value], dtype=np.float64),
            )
            store[key] = _Events(*one)
        else:
            store[key] = old.inserted(when, event_id, value)

    def _add(self, rows: pd.DataFrame) -> None:
        times, ids = _millis(rows[self.event_time]), self._ids(rows)
        for spec in self.specs:
            values = _values(rows, spec)
            store = self._events[spec]
            for key, positions in _groups(rows[spec.entity]).items():
                old = store.get(key)
                parts = (times[positions], ids[positions], values[positions])
                store[key] = old.merged(*parts) if old else _Events(*parts).merged(*(p[:0] for p in parts))

    @property
    def reach_ms(self) -> int:
        """How far back a query reaches: the longest window plus its label delay, in milliseconds."""
        spans = [parse_duration(w) + spec.delay_ms for spec in self.specs for w in spec.windows]
        return max(spans, default=0)

    def forget_before(self, cutoff_ms: int) -> int:
        """Drop events older than ``cutoff_ms`` (epoch ms) and their ids; how many entries went (an event
        counts once per window group that holds it).

        A query at time ``t`` reads events back to ``t - reach_ms`` only, so forgetting before
        ``earliest query - reach_ms`` changes no feature while keeping memory bounded on long
        streams (batch scoring calls it chunk by chunk).
        """
        dropped: list[np.ndarray] = []
        with self._lock:
            for store in self._events.values():
                for key, events in list(store.items()):
                    cut = int(np.searchsorted(events.times, cutoff_ms, side="left"))
                    if cut == 0:
                        continue
                    dropped.append(events.ids[:cut])
                    if cut == len(events.times):
                        del store[key]
                    else:
                        kept = (events.times[cut:], events.ids[cut:], events.values[cut:])
                        store[key] = _Events(*(part.copy() for part in kept))
            if self.id_column and dropped:
                self._seen.difference_update(np.concatenate(dropped).tolist())
        return sum(len(ids) for ids in dropped)

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Point-in-time window features for each row of ``frame`` (rows need not be in the history)."""
        query = _millis(frame[self.event_time])
        blocks: list[np.ndarray] = []
        for spec in self.specs:
            columns = self._spec_features(spec, query, _groups(frame[spec.entity]))
            blocks.extend(columns[name] for name in spec.names)
        matrix = np.column_stack(blocks) if blocks else np.empty((len(frame), 0))
        return pd.DataFrame(matrix, index=frame.index, columns=self.names)

    def feature_rows(self, times_ms: np.ndarray, keys: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Light path of :meth:`features` for the few rows of a request: feature name -> values.

        ``times_ms`` from :func:`event_millis`, ``keys`` each entity column's (coerced) values. The
        slices and the aggregation are those of :meth:`features`, so the values are bit-identical.
        """
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            out.update(self._spec_features(spec, times_ms, _positions(keys[spec.entity])))
        return out

    def _spec_features(
        self, spec: WindowSpec, query: np.ndarray, groups: Mapping[Any, np.ndarray]
    ) -> dict[str, np.ndarray]:
        columns = _empty(spec, len(query))
        store = self._events[spec]
        for key, positions in groups.items():
            events = store.get(key)
            if events is not None:
                for name, values in events.features(query[positions], spec).items():
                    columns[name][positions] = values
        return columns


def _groups(keys: pd.Series) -> dict[Any, np.ndarray]:
    """Row positions per key; a plain loop for the few rows of an API request (groupby costs ~1 ms)."""
    if len(keys) > 32:
        return {key: np.asarray(pos) for key, pos in keys.groupby(keys, sort=False).indices.items()}
    return _positions(keys.tolist())


def _positions(keys: Sequence[Any]) -> dict[Any, np.ndarray]:
    found: dict[Any, list[int]] = {}
    for position, key in enumerate(keys):
        found.setdefault(key, []).append(position)
    return {key: np.asarray(positions) for key, positions in found.items()}


def _values(frame: pd.DataFrame, spec: WindowSpec) -> np.ndarray:
    if spec.column is None:
        return np.ones(len(frame))
    return pd.to_numeric(frame[spec.column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def window_features(
    frame: pd.DataFrame, specs: Sequence[WindowSpec], event_time: str, id_column: str | None = None
) -> pd.DataFrame:
    """Point-in-time window features for every row of ``frame``, from the rows of ``frame`` itself."""
    history = EntityHistory(specs, event_time, id_column)
    history.extend(frame)
    return history.features(frame)
