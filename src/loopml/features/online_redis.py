"""The Redis online state: one window state shared by every API replica (``serve.online_store``).

Layout, under ``loopml:online:<model>:<layout>`` (``<layout>``: a hash of the window groups, the
event-time and id columns, the horizon and the metadata store's first data version, so a version
with other windows, or another deployment sharing the Redis, gets a state of its own):

- ``<ns>:<g>:z:<key>``: a sorted set per window group ``g`` (1, 2, ... in the model's order) and
  entity key: member = event id (a number as 16 hex digits that sort as the number), score = event
  time (epoch ms). Redis orders equal scores by member, so a window's events come back in training's
  (time, id) order; and a member is unique, so adding an event twice (a retried request, two
  replicas, a replayed log) keeps one.
- ``<ns>:<g>:v:<key>``: a hash event id -> value (the aggregated column; ``nan`` while unknown: a
  label not back yet).
- ``<ns>:warm``: set once the state was filled from the store, to the data version it holds;
  ``<ns>:warming``: the lock of the one process filling it; ``<ns>:feedback``: the newest feedback
  row learnt (shared, so a label is read from the store once, whichever replica reads it).

Every update and read is one Lua script, atomic on the server: a request's events are added and
their windows read in one round trip, and no other replica's update interleaves. Each entity keeps
the events of the last ``horizon`` (twice the longest window plus its label delay) behind its
newest one, and its keys expire after that long without an update: bounded, whatever the traffic.
The aggregation runs here, on the values the script returns, with the code training uses, so the
features are bit-identical to the offline ones. Not for Redis Cluster (a script builds its keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from loopml._durations import parse_duration
from loopml._optional import require
from loopml.errors import OnlineStateError
from loopml.features.events import Events, is_missing_key, key_text
from loopml.features.online import OnlineState, horizon_ms
from loopml.features.online_scripts import ADVANCE, LEARN, OBSERVE_READ, RELEASE
from loopml.features.windows import WindowSpec, _Events, empty_features

__all__ = ["WARM_CHUNK", "RedisState", "Warming", "shown_url", "sortable_number"]

WARM_CHUNK = 1_000  # events per script call (warming, batches): Redis runs one script at a time
_SMALL = 32  # up to this many events a call is a request's: the short timeout applies
_BULK_TIMEOUT_S = 60.0  # the socket timeout of bulk calls (a chunk can take a second on a busy host)
_DOWN_FOR = 1.0  # seconds a failed call keeps the state refusing at once (no socket wait per request)
_LOCK_S = 60  # the warming lock's lease, renewed after each chunk
_WAIT_S = 900.0  # how long a process waits for another one's warming

Warming = Callable[[], Iterable[tuple[str, Events]]]
"""Yields ``("learn", events)`` (values known: the snapshot) and ``("observe", events)`` (scored
events: the prediction log), in order; :meth:`RedisState.warm` adds them."""


def shown_url(url: str) -> str:
    """``url`` without its password (for messages and readiness)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _layout(
    model: str, specs: Sequence[WindowSpec], event_time: str, id_column: str | None, store_tag: str
) -> str:
    groups = [[s.entity, s.column] for s in specs]
    text = json.dumps([model, groups, event_time, id_column, horizon_ms(specs), store_tag], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class RedisState(OnlineState):
    """The window state of model ``model`` in the Redis at ``url`` (see the module docstring).

    ``numeric_ids``: whether event ids are numbers (they sort as numbers, as in training) or text.
    ``store_tag``: what tells this deployment's metadata store from another's (two deployments of one
    project sharing a Redis keep apart states).
    """

    def __init__(
        self,
        url: str,
        model: str,
        specs: Sequence[WindowSpec],
        event_time: str,
        id_column: str | None,
        *,
        numeric_ids: bool = True,
        timeout_s: float = 1.0,
        store_tag: str = "",
    ) -> None:
        super().__init__(specs, event_time, id_column)
        redis = require("redis", "the Redis online state (serve.online_store)")
        self.url, self.model, self.numeric_ids = url, model, numeric_ids
        layout = _layout(model, specs, event_time, id_column, store_tag)
        self.namespace = f"loopml:online:{model}:{layout}"
        self.horizon = horizon_ms(specs)
        self._errors = redis.exceptions
        connect = {"socket_connect_timeout": timeout_s}
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, **connect)
        self._bulk = redis.Redis.from_url(url, socket_timeout=_BULK_TIMEOUT_S, **connect)
        self._observe_read = self._client.register_script(OBSERVE_READ)
        self._learn = self._client.register_script(LEARN)
        self._advance = self._client.register_script(ADVANCE)
        self._release = self._client.register_script(RELEASE)
        # per group: how far before the cut a window reaches (the longest window), and the label delay
        self._reach = [(max(parse_duration(w) for w in s.windows), s.delay_ms) for s in self.specs]
        self._down_until = 0.0
        self._down: OnlineStateError | None = None
        self._warming: tuple[str, Warming] | None = None

    # -- the four operations -------------------------------------------------------------------

    def observe(self, events: Events) -> int:
        return sum(int(self._run(self._observe_read, chunk, "o")[0]) for chunk in events.chunks(WARM_CHUNK))

    def learn(self, events: Events) -> int:
        return sum(int(self._run(self._learn, chunk, "l")) for chunk in events.chunks(WARM_CHUNK))

    def features(self, events: Events, *, observe: bool = False) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {}
        for spec in self.specs:
            columns.update(empty_features(spec, len(events)))
        chunks = events.chunks(WARM_CHUNK)
        if observe and len(chunks) > 1:  # every event of the batch first, as training sees them
            self.observe(events)
        mode = "or" if observe and len(chunks) == 1 else "r"
        start = 0
        for chunk in chunks:
            reply = self._run(self._observe_read, chunk, mode)
            self._fill(columns, chunk, reply[1:], start)
            start += len(chunk)
        return columns

    def check(self) -> None:
        if not self._guard(lambda: self._client.exists(self._key("warm"))):
            raise OnlineStateError(self._cold_message())

    # -- shared feedback cursor, warming, description ------------------------------------------

    def feedback_cursor(self) -> int:
        value = self._guard(lambda: self._client.get(self._key("feedback")))
        return int(value) if value else 0

    def advance_feedback(self, newest: int) -> None:
        self._guard(lambda: self._advance(keys=[self._key("feedback")], args=[newest]))

    def warm(self, tag: str, batches: Warming) -> bool:
        """Fill the state from the store unless it already holds data version ``tag``: once, by one
        process (a lock); the others wait for it. Adding is idempotent, so a warming cut short is
        simply done again. Returns whether this process warmed it."""
        self._warming = (tag, batches)
        deadline = time.monotonic() + _WAIT_S
        owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        while True:
            current = self._guard(lambda: self._client.get(self._key("warm")))
            if current is not None and current.decode() == tag:
                return False
            if self._guard(lambda: self._client.set(self._key("warming"), owner, nx=True, ex=_LOCK_S)):
                try:
                    self._fill_from(batches)
                    self._guard(lambda: self._client.set(self._key("feedback"), 0))  # labels: all again
                    self._guard(lambda: self._client.set(self._key("warm"), tag))
                finally:
                    self._guard(lambda: self._release(keys=[self._key("warming")], args=[owner]))
                return True
            if time.monotonic() > deadline:
                raise OnlineStateError(
                    f"another process has been warming the online state {self.namespace} for "
                    f"{_WAIT_S:.0f} s; check the other replicas' logs, or delete {self._key('warming')}."
                )
            time.sleep(0.2)

    def _fill_from(self, batches: Warming) -> None:
        for kind, events in batches():
            for chunk in events.chunks(WARM_CHUNK):
                self._run(
                    self._learn if kind == "learn" else self._observe_read,
                    chunk,
                    "l" if kind == "learn" else "o",
                    warm=False,
                )
                self._guard(lambda: self._client.expire(self._key("warming"), _LOCK_S))

    def refresh(self) -> None:
        """Warm the state again when it was emptied (Redis restarted without its data, keys evicted)."""
        if self._warming is None:
            return
        if not self._guard(lambda: self._client.exists(self._key("warm"))):
            self.warm(*self._warming)

    def describe(self) -> dict[str, Any]:
        return {"backend": "redis", "url": shown_url(self.url), "namespace": self.namespace}

    def close(self) -> None:
        self._client.close()
        self._bulk.close()

    # -- plumbing --------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def _cold_message(self) -> str:
        return (
            f"the online window state at {shown_url(self.url)} ({self.namespace}) is empty (Redis restarted "
            "without its data, or its keys were evicted); it is being warmed again from the store."
        )

    def _guard(self, call: Callable[[], Any]) -> Any:
        """Run one Redis call; a connection failure becomes an :class:`OnlineStateError`, and for
        :data:`_DOWN_FOR` seconds the next calls fail at once instead of waiting on a socket."""
        if self._down is not None and time.monotonic() < self._down_until:
            raise self._down
        try:
            result = call()
        except self._errors.ResponseError as exc:
            if str(exc).startswith("LOOPML_COLD"):
                raise OnlineStateError(self._cold_message()) from None
            raise OnlineStateError(
                f"the online window state at {shown_url(self.url)} refused: {exc}"
            ) from None
        except self._errors.RedisError as exc:
            self._down = OnlineStateError(
                f"the online window state at {shown_url(self.url)} cannot be reached: {exc}",
                hint="Models with window features answer 503 until it is back; "
                "check Redis and serve.online_store.",
            )
            self._down_until = time.monotonic() + _DOWN_FOR
            raise self._down from None
        self._down = None
        return result

    def _run(self, script: Any, events: Events, mode: str, *, warm: bool = True) -> Any:
        """One script call over ``events``: a request's few on the short timeout (a Redis that does
        not answer within it is down: 503), a bulk chunk on the long one."""
        args = self._args(events, mode, need_warm=warm)
        client = self._client if len(events) <= _SMALL else self._bulk
        return self._guard(lambda: script(args=args, client=client))

    def _args(self, events: Events, mode: str, *, need_warm: bool) -> list[Any]:
        n, specs = len(events), self.specs
        args: list[Any] = [self.namespace, n, len(specs), self.horizon, self.horizon, mode, int(need_warm)]
        ids = self._id_texts(events)
        keys = [events.keys[s.entity] for s in specs]
        values = [events.values[s.column].tolist() if s.column else None for s in specs]
        for i, when in enumerate(events.times.tolist()):
            args += (when, ids[i])
            for g, (reach, delay) in enumerate(self._reach):
                key = keys[g][i]
                value = repr(values[g][i]) if values[g] is not None else "1.0"  # type: ignore[index]
                cut = when - delay
                args += ("" if is_missing_key(key) else key_text(key), value, cut - reach, cut)
        return args

    def _id_texts(self, events: Events) -> list[str]:
        """Each event's member: its id, encoded so that Redis orders equal times as training does."""
        if events.ids is None:  # no id column: each event is new (nothing to de-duplicate on)
            return ["~" + uuid.uuid4().hex for _ in range(len(events))]
        encode = sortable_number if self.numeric_ids else str
        return ["~" + uuid.uuid4().hex if is_missing_key(i) else encode(i) for i in events.ids.tolist()]

    def _fill(self, columns: dict[str, np.ndarray], events: Events, hits: list[bytes], start: int) -> None:
        """Aggregate each event's window contents (as the script returned them) into ``columns``."""
        g = len(self.specs)
        for i, when in enumerate(events.times.tolist()):
            query = np.array([when], dtype=np.int64)
            for s, spec in enumerate(self.specs):
                found = hits[i * g + s]
                if not found:
                    continue
                pairs = np.fromstring(found, dtype=np.float64, sep=" ").reshape(-1, 2)
                window = _Events(pairs[:, 0].astype(np.int64), np.zeros(len(pairs)), pairs[:, 1].copy())
                for name, value in window.features(query, spec).items():
                    columns[name][start + i] = value[0]


def sortable_number(value: Any) -> str:
    """A number as 16 hex digits whose text order is the numbers' order (so that Redis, which orders
    members of equal score by their bytes, orders events of equal time by id as training does)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(value)))
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"
