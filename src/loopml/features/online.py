"""The online window state: what a served model reads its entity window features from.

A model with window features ("a card's spend over the last day", "a terminal's fraud rate over
the last weeks") needs, at serving time, every earlier event of the entity, whichever process scored
it, and the labels that came back since. :class:`OnlineState` is that state behind four operations:
add scored events, add late labels, read the point-in-time features of events (optionally adding
them first, in one step), and say whether it can serve. Two backends:

- :class:`EmbeddedState` (the default): an :class:`~loopml.features.EntityHistory` in this process,
  warmed from the store when the model loads. Exact for one API process; with several replicas each
  sees only the events routed to it.
- :class:`~loopml.features.online_redis.RedisState` (``serve.online_store: redis://...``): one state
  in Redis shared by every replica (and by batch scoring run online), updated atomically by Lua
  scripts, idempotent by event id, bounded per entity, warmed from the store once.

Both give, for an event, the values training computes for it offline (:func:`window_features`):
the same window edges (``[t - delay - window, t - delay)``), the event itself never in its own
windows, unknown labels skipped, and the same arithmetic on the same ordered values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.features.events import Events
from loopml.features.windows import EntityHistory, WindowSpec, reach_ms

__all__ = ["EmbeddedState", "OnlineState", "horizon_ms"]


def horizon_ms(specs: Sequence[WindowSpec]) -> int:
    """How far behind its newest event an entity keeps events online: twice the longest reach (window
    plus label delay), so an event up to one reach later than its entity's newest gets exact features."""
    return 2 * reach_ms(specs)


class OnlineState(ABC):
    """The window state of one served model (see the module docstring).

    Implementations keep ``specs``, ``event_time`` and ``id_column``; the feedback cursor (how far
    the labels sent as feedback have reached the state) lives with the state, so that every process
    sharing the state shares it too.
    """

    def __init__(self, specs: Sequence[WindowSpec], event_time: str, id_column: str | None) -> None:
        self.specs = tuple(specs)
        self.event_time = event_time
        self.id_column = id_column
        self._cursor = 0

    @abstractmethod
    def observe(self, events: Events) -> int:
        """Add scored events; an id already known is skipped (a retried request counts once). Returns
        how many were added."""

    @abstractmethod
    def learn(self, events: Events) -> int:
        """Late values (labels) of events, by id: known events take each non-NaN value, unknown ones
        are added with theirs; the last of repeated ids wins. Returns how many values changed."""

    @abstractmethod
    def features(self, events: Events, *, observe: bool = False) -> dict[str, np.ndarray]:
        """The point-in-time window features of ``events`` (feature name -> one value per event). With
        ``observe`` the events are added first, in the same step, as training sees them: an event's
        windows then hold every earlier event, the request's own earlier ones included, never itself."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~loopml.errors.OnlineStateError` when features cannot be served from this state
        now (its store unreachable, or emptied and being warmed again)."""

    @property
    def names(self) -> list[str]:
        """Every feature name, in a stable order."""
        return [name for spec in self.specs for name in spec.names]

    @property
    def columns(self) -> list[str]:
        """Raw columns an event needs: the event time, the id, each entity and each aggregated value."""
        cols = [self.event_time, *([self.id_column] if self.id_column else [])]
        for spec in self.specs:
            cols += [spec.entity, *([spec.column] if spec.column else [])]
        return list(dict.fromkeys(cols))

    def events_of(self, frame: pd.DataFrame) -> Events:
        """The :class:`Events` of a frame's rows (a column it lacks reads as missing)."""
        return Events.from_frame(
            frame.reindex(columns=self.columns), self.specs, self.event_time, self.id_column
        )

    def feedback_cursor(self) -> int:
        """The newest feedback row whose label reached this state (0: none yet)."""
        return self._cursor

    def advance_feedback(self, newest: int) -> None:
        """Record that feedback rows up to id ``newest`` reached the state (never moves back)."""
        self._cursor = max(self._cursor, newest)

    def refresh(self) -> None:  # noqa: B027 - a hook: only a shared state has anything to repair
        """Repair the state where it was lost (a shared store emptied): nothing to do in process."""

    def describe(self) -> dict[str, Any]:
        """Where the state lives, for readiness and logs."""
        return {"backend": "embedded"}

    def close(self) -> None:  # noqa: B027 - a hook: only a remote state holds connections
        """Release connections (safe to call twice)."""


class EmbeddedState(OnlineState):
    """The state in this process: an :class:`EntityHistory` (the default; exact for one API process)."""

    def __init__(self, history: EntityHistory) -> None:
        super().__init__(history.specs, history.event_time, history.id_column)
        self.history = history

    def observe(self, events: Events) -> int:
        return self.history.add(events)

    def learn(self, events: Events) -> int:
        return self.history.learn_events(events)

    def features(self, events: Events, *, observe: bool = False) -> dict[str, np.ndarray]:
        if observe:
            self.history.add(events)
        return self.history.read(events)

    def check(self) -> None:
        return None
