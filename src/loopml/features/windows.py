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
from typing import Any

import numpy as np
import pandas as pd

from loopml._durations import parse_duration
from loopml.features.events import Events, event_millis, frame_millis, is_missing_key

__all__ = [
    "EntityHistory",
    "Events",
    "WindowSpec",
    "empty_features",
    "event_millis",
    "parse_duration",
    "reach_ms",
    "window_features",
]

AGGS = ("count", "sum", "mean", "max")
_SMALL = 32  # up to this many events, plain loops (a request's few rows); pandas beyond
_PRUNE_MIN = 100_000  # a served history prunes its seen ids once they pass this many (and doubled)


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


@dataclass
class _Events:
    """One entity's events, sorted by (time, id): the unit both paths aggregate over."""

    times: np.ndarray
    ids: np.ndarray
    values: np.ndarray

    def merged(self, times: np.ndarray, ids: np.ndarray, values: np.ndarray) -> _Events:
        """These events and the given ones, sorted by (time, id); an event already here stays as it is."""
        t, i, v = (np.concatenate(p) for p in ((self.times, times), (self.ids, ids), (self.values, values)))
        order = np.lexsort((i, t))  # stable: of two equal (time, id), the one already here comes first
        t, i, v = t[order], i[order], v[order]
        if len(self.times) and len(times):
            repeat = np.flatnonzero((t[1:] == t[:-1]) & (i[1:] == i[:-1])) + 1
            if len(repeat):
                t, i, v = (np.delete(part, repeat) for part in (t, i, v))
        return _Events(t, i, v)

    def within(self, horizon_ms: int | None) -> _Events:
        """Only the events at most ``horizon_ms`` before the newest one (all of them for None)."""
        if horizon_ms is None or not len(self.times):
            return self
        cut = int(np.searchsorted(self.times, self.times[-1] - horizon_ms, side="left"))
        if cut == 0:
            return self
        return _Events(self.times[cut:].copy(), self.ids[cut:].copy(), self.values[cut:].copy())

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
        if at < hi and self.ids[at] == event_id:
            return self  # already here (an id forgotten as seen, sent again)

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


def empty_features(spec: WindowSpec, n: int) -> dict[str, np.ndarray]:
    """The features of ``n`` events with nothing in their windows: counts and sums 0, the rest NaN."""
    return {
        name: np.zeros(n) if name.rsplit("__", 1)[1].startswith(("count", "sum")) else np.full(n, np.nan)
        for name in spec.names
    }


class EntityHistory:
    """Events per entity, appended as they arrive, queried point-in-time.

    The same object serves training (filled with a whole snapshot, then queried for every row) and
    serving (filled at start-up, queried and extended one request at a time). Events are
    de-duplicated by the id column, so replaying an event already known changes nothing.

    ``horizon_ms`` bounds a served history: each entity keeps only its events at most that far
    before its newest one (serving uses twice :attr:`reach_ms`, so an event up to one reach later
    than its entity's newest still gets exact features); None (training) keeps every event.
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        event_time: str,
        id_column: str | None = None,
        *,
        horizon_ms: int | None = None,
    ) -> None:
        self.specs = tuple(specs)
        self.event_time = event_time
        self.id_column = id_column
        self.horizon_ms = horizon_ms
        self._lock = threading.Lock()
        self._seen: dict[Any, int] = {}  # id -> event time (pruned past the horizon)
        self._prune_at = _PRUNE_MIN
        self._newest = np.iinfo(np.int64).min
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

    def events_of(self, frame: pd.DataFrame) -> Events:
        """The :class:`Events` of a frame's rows (a value column it lacks is unknown)."""
        return Events.from_frame(frame, self.specs, self.event_time, self.id_column)

    def extend(self, frame: pd.DataFrame) -> int:
        """Add events (rows holding :attr:`columns`); ids already seen are skipped. Returns rows added."""
        required = [self.event_time, *(spec.entity for spec in self.specs)]
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"events lack column(s) {missing}")
        return self.add(self.events_of(frame))

    def extend_rows(self, times_ms: np.ndarray, rows: Sequence[Mapping[str, Any]]) -> int:
        """Light path of :meth:`extend` for the few events of a request, without pandas.

        ``times_ms`` from :func:`event_millis`; each row maps the id, entity and value columns to
        coerced values (numbers as floats, a value not sent is NaN). The result is the history
        :meth:`extend` builds from the same rows.
        """
        return self.add(Events.from_rows(times_ms, rows, self.specs, self.id_column))

    def add(self, events: Events) -> int:
        """Add events (ids already seen, or seen earlier in ``events``, are skipped); how many went in."""
        if not len(events):
            return 0
        with self._lock:
            fresh, ids = self._fresh(events)
            if not len(fresh):
                return 0
            times = events.times[fresh]
            if self.id_column:
                self._seen.update(zip(ids.tolist(), times.tolist(), strict=True))
            for spec in self.specs:
                values = events.values[spec.column][fresh] if spec.column else np.ones(len(fresh))
                keys = events.keys[spec.entity]
                store = self._events[spec]
                for key, positions in _key_groups([keys[i] for i in fresh.tolist()]).items():
                    self._put(store, key, _Events(times[positions], ids[positions], values[positions]))
            self._newest = max(self._newest, int(times.max()))
            self._prune_seen()
            return len(fresh)

    def _fresh(self, events: Events) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the events not seen before (the first of repeats), and the ids they get."""
        if events.ids is None:
            ids = np.arange(self._next_id, self._next_id + len(events))
            self._next_id += len(events)
            return np.arange(len(events)), ids
        seen, given = self._seen, events.ids.tolist()
        if len(given) <= _SMALL:
            first: dict[Any, int] = {}
            for position, event_id in enumerate(given):
                if event_id not in seen and event_id not in first:
                    first[event_id] = position
            fresh = np.fromiter(first.values(), dtype=np.intp, count=len(first))
        else:
            unseen = np.fromiter((i not in seen for i in given), dtype=bool, count=len(given))
            fresh = np.flatnonzero(unseen & ~pd.Series(events.ids).duplicated().to_numpy())
        return fresh, events.ids[fresh]

    def _put(self, store: dict[Any, _Events], key: Any, new: _Events) -> None:
        """Merge ``new`` into one entity's events, then keep them within the horizon."""
        old = store.get(key)
        if old is None:
            merged = new.merged(*(p[:0] for p in (new.times, new.ids, new.values)))
        elif len(new.times) == 1:
            merged = old.inserted(int(new.times[0]), new.ids[0], float(new.values[0]))
        else:
            merged = old.merged(new.times, new.ids, new.values)
        store[key] = merged.within(self.horizon_ms)

    def _prune_seen(self) -> None:
        """Forget ids older than the horizon behind the newest event, once their count has doubled."""
        if self.horizon_ms is None or len(self._seen) <= self._prune_at:
            return
        cutoff = self._newest - self.horizon_ms
        self._seen = {i: t for i, t in self._seen.items() if t >= cutoff}
        self._prune_at = max(2 * len(self._seen), _PRUNE_MIN)

    def learn(self, frame: pd.DataFrame) -> int:
        """Late values (labels) of events: known events take them, unknown ones are added with them.

        ``frame`` holds :attr:`columns` (the id column is required); a NaN value teaches nothing.
        Each changed entity gets new arrays in one assignment, so a concurrent query sees the old
        or the new values, never a mix. Returns how many events learnt a value (once per window
        group that aggregates it, for known events).
        """
        if not self.id_column or self.id_column not in frame.columns:
            raise ValueError("learning late values needs the id column")
        return self.learn_events(self.events_of(frame))

    def learn_events(self, events: Events) -> int:
        """:meth:`learn` for :class:`Events` (their ids are required)."""
        if not self.id_column or events.ids is None:
            raise ValueError("learning late values needs the id column")
        given = events.ids.tolist()
        with self._lock:
            known = np.fromiter((i in self._seen for i in given), dtype=bool, count=len(given))
        # an event labelled twice (a corrected label) takes its last label, as a known event does below
        fresh = ~known & ~pd.Series(events.ids).duplicated(keep="last").to_numpy()
        valued = [(s, s.column) for s in self.specs if s.column is not None]
        changed = 0
        if valued and fresh.any():
            changed = int(np.any([~np.isnan(events.values[c][fresh]) for _, c in valued], axis=0).sum())
        self.add(events.take(fresh))  # events never scored here (another replica's): added with their values
        rows = events.take(known)
        assert rows.ids is not None
        with self._lock:
            for spec, column in valued:
                values, store = rows.values[column], self._events[spec]
                for key, positions in _key_groups(rows.keys[spec.entity]).items():
                    old = store.get(key)
                    if old is not None:
                        new, count = old.relabelled(
                            rows.times[positions], rows.ids[positions], values[positions]
                        )
                        store[key], changed = new, changed + count
        return changed

    @property
    def reach_ms(self) -> int:
        """How far back a query reaches: the longest window plus its label delay, in milliseconds."""
        return reach_ms(self.specs)

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
                for event_id in np.concatenate(dropped).tolist():
                    self._seen.pop(event_id, None)
        return sum(len(ids) for ids in dropped)

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Point-in-time window features for each row of ``frame`` (rows need not be in the history)."""
        keys = {spec.entity: frame[spec.entity].tolist() for spec in self.specs}
        found = self.read(Events(frame_millis(frame[self.event_time]), None, keys, {}))
        if not found:
            return pd.DataFrame(np.empty((len(frame), 0)), index=frame.index)
        return pd.DataFrame(
            np.column_stack([found[n] for n in self.names]), index=frame.index, columns=self.names
        )

    def feature_rows(self, times_ms: np.ndarray, keys: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Light path of :meth:`features` for the few rows of a request: feature name -> values.

        ``times_ms`` from :func:`event_millis`, ``keys`` each entity column's (coerced) values. The
        slices and the aggregation are those of :meth:`features`, so the values are bit-identical.
        """
        return self.read(Events(np.asarray(times_ms, dtype=np.int64), None, keys, {}))

    def read(self, events: Events) -> dict[str, np.ndarray]:
        """Point-in-time window features of ``events`` (their times and keys): feature name -> values."""
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            out.update(self._spec_features(spec, events.times, _key_groups(events.keys[spec.entity])))
        return out

    def _spec_features(
        self, spec: WindowSpec, query: np.ndarray, groups: Mapping[Any, np.ndarray]
    ) -> dict[str, np.ndarray]:
        columns = empty_features(spec, len(query))
        store = self._events[spec]
        for key, positions in groups.items():
            events = store.get(key)
            if events is not None:
                for name, values in events.features(query[positions], spec).items():
                    columns[name][positions] = values
        return columns


def reach_ms(specs: Sequence[WindowSpec]) -> int:
    """How far back any window of ``specs`` reaches: its longest window plus its label delay (ms)."""
    spans = [parse_duration(w) + spec.delay_ms for spec in specs for w in spec.windows]
    return max(spans, default=0)


def _key_groups(keys: Sequence[Any]) -> dict[Any, np.ndarray]:
    """Positions per entity key, missing keys (None, NaN) left out; pandas' groupby for many rows
    (a plain loop for the few rows of an API request: groupby costs ~1 ms)."""
    if len(keys) > _SMALL:
        series = pd.Series(keys, dtype=object if any(isinstance(k, str) for k in keys[:1]) else None)
        return {key: np.asarray(pos) for key, pos in series.groupby(series, sort=False).indices.items()}
    found: dict[Any, list[int]] = {}
    for position, key in enumerate(keys):
        if not is_missing_key(key):
            found.setdefault(key, []).append(position)
    return {key: np.asarray(positions) for key, positions in found.items()}


def window_features(
    frame: pd.DataFrame, specs: Sequence[WindowSpec], event_time: str, id_column: str | None = None
) -> pd.DataFrame:
    """Point-in-time window features for every row of ``frame``, from the rows of ``frame`` itself."""
    history = EntityHistory(specs, event_time, id_column)
    history.extend(frame)
    return history.features(frame)
