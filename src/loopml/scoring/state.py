"""A loaded model's window state: its online state (in process or Redis), warmed from the store, and
the labels sent as feedback that reach it.

The embedded state is rebuilt from the store each time a version loads: the latest data snapshot
plus every event logged since by the API or batch (the newest ``_HISTORY_LOG_LIMIT``), then the
feedback. The Redis state is filled from the same rows once (per data version), by whichever
process gets there first, and then outlives every process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import select

from loopml.features import EntityHistory, WindowSpec
from loopml.features.events import Events
from loopml.features.online import EmbeddedState, OnlineState, horizon_ms
from loopml.registry import ModelVersion
from loopml.store import Store, tables
from loopml.validate import DataContract, coerce_column, get_version, load_snapshot

if TYPE_CHECKING:
    from loopml.scoring.loaded import LoadedModel

__all__ = ["WindowState", "load_history", "open_window_state"]

_HISTORY_LOG_LIMIT = 1_000_000


class WindowState:
    """The online state a model's window features are read from (:class:`OnlineState`), and the
    labels sent as feedback that reach it.

    Mutable by nature (every scored event and every label moves it), so it lives apart from the
    immutable :class:`LoadedModel` that reads it; a model swap builds a new model with a new state
    (the Redis backend's new state is the same shared one, already warm).
    """

    def __init__(self, online: OnlineState | EntityHistory, feedback_cursor: int = 0) -> None:
        self.online = EmbeddedState(online) if isinstance(online, EntityHistory) else online
        if feedback_cursor:
            self.online.advance_feedback(feedback_cursor)

    @property
    def history(self) -> EntityHistory | None:
        """The in-process history (None for a shared state)."""
        return self.online.history if isinstance(self.online, EmbeddedState) else None

    @property
    def feedback_cursor(self) -> int:
        """The newest feedback row whose label reached the state."""
        return self.online.feedback_cursor()

    def learn_feedback(self, store: Store, model: LoadedModel) -> int:
        """Labels sent as feedback since the last call reach the state (see
        :meth:`LoadedModel.learn_feedback`); a shared state emptied meanwhile is warmed again first."""
        self.online.refresh()
        newest, rows = _feedback_since(store, model.name, self.online.feedback_cursor(), model.contract)
        target = model.version.signature["target"]
        labelled = self.online.events_of(rows.rename(columns={"label": target})) if len(rows) else None
        changed = self.online.learn(labelled) if labelled is not None else 0
        self.online.advance_feedback(newest)  # only once learnt: a failure is retried on the next call
        return changed


def open_window_state(
    store: Store, version: ModelVersion, specs: list[WindowSpec], online_url: str | None = None
) -> WindowState:
    """The window state of a version: in process (``online_url`` None), or the shared one in Redis,
    warmed from the store if it is empty (or holds an older data version)."""
    if online_url is None:
        return WindowState(load_history(store, version, specs))
    from loopml.features.online_redis import RedisState

    sig = version.signature
    contract = DataContract.model_validate(sig["contract"])
    id_column = sig.get("id_column")
    numeric = id_column is not None and contract.column(id_column).dtype in ("int", "float")
    first = get_version(store, version.name, 1)  # this store's own data: its state, not another deployment's
    store_tag = f"{first.content_hash}:{first.created_at}"
    state = RedisState(
        online_url,
        version.name,
        specs,
        sig["event_time"],
        id_column,
        numeric_ids=numeric,
        store_tag=store_tag,
    )
    data = get_version(store, version.name)
    state.warm(f"data-{data.version}-{data.content_hash[:16]}", lambda: _warm_batches(store, version, specs))
    return WindowState(state)


def load_history(store: Store, version: ModelVersion, specs: list[WindowSpec]) -> EntityHistory:
    """The served window history: the latest data snapshot plus every event logged since by the API or
    batch, each entity bounded to :func:`~loopml.features.online.horizon_ms` behind its newest event."""
    sig = version.signature
    history = EntityHistory(specs, sig["event_time"], sig.get("id_column"), horizon_ms=horizon_ms(specs))
    for _, events in _warm_batches(store, version, specs):
        history.add(events)  # the snapshot first: its values win over a logged copy of an event
    return history


def _warm_batches(
    store: Store, version: ModelVersion, specs: list[WindowSpec]
) -> Iterator[tuple[str, Events]]:
    """What a state is warmed from: the snapshot's events with their values (``learn``), then the
    logged events since (``observe``: an event already known is skipped)."""
    sig = version.signature
    event_time, id_column = sig["event_time"], sig.get("id_column")
    _, snapshot = load_snapshot(store, version.name)
    yield "learn", Events.from_frame(snapshot, specs, event_time, id_column)
    logged = _logged_inputs(store, version.name)
    if len(logged):
        contract = DataContract.model_validate(sig["contract"])
        columns = [event_time, *([id_column] if id_column else [])]
        columns += [c for s in specs for c in (s.entity, s.column) if c]
        present = [c for c in dict.fromkeys(columns) if c in logged.columns]
        coerced = pd.DataFrame({c: coerce_column(logged[c], contract.column(c)) for c in present})
        coerced = coerced.reindex(columns=list(dict.fromkeys(columns)))
        yield "observe", Events.from_frame(coerced, specs, event_time, id_column)


def _feedback_since(store: Store, name: str, after: int, contract: DataContract) -> tuple[int, pd.DataFrame]:
    """Feedback rows newer than id ``after`` for ``name``'s predictions: the newest id, and each
    labelled prediction's inputs (coerced to the contract) with its ``label``.

    The first read (``after`` 0, at load) takes at most the newest ``_HISTORY_LOG_LIMIT`` rows, as
    the history does of the logged inputs: a model loaded after years of feedback reads a bounded
    amount (``store.retention`` bounds the table itself); later reads take every newer row."""
    f, p = tables.feedback, tables.predictions
    query = (
        select(f.c.id, f.c.label, p.c.inputs)
        .join(p, p.c.id == f.c.prediction_id)
        .where(p.c.model_name == name, f.c.id > after)
        .order_by(f.c.id.desc())
    )
    if after == 0:
        query = query.limit(_HISTORY_LOG_LIMIT)
    with store.engine.connect() as conn:
        found = list(reversed(conn.execute(query).all()))
    if not found:
        return after, pd.DataFrame()
    inputs = pd.DataFrame.from_records([row.inputs for row in found])
    coerced = {c: coerce_column(inputs[c], contract.column(c)) for c in inputs.columns if c in contract.names}
    labels = pd.to_numeric(pd.Series([row.label for row in found]), errors="coerce")
    return int(found[-1].id), pd.DataFrame(coerced).assign(label=labels.to_numpy())


def _logged_inputs(store: Store, name: str) -> pd.DataFrame:
    p = tables.predictions
    query = select(p.c.inputs).where(p.c.model_name == name).order_by(p.c.created_at.desc())
    with store.engine.connect() as conn:
        rows = conn.execute(query.limit(_HISTORY_LOG_LIMIT)).scalars().all()
    return pd.DataFrame.from_records(list(reversed(rows))) if rows else pd.DataFrame()
