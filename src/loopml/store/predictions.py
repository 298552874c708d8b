"""The prediction log: every prediction the API or a batch job makes, written off the request path."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, insert, select

from loopml.enums import Origin
from loopml.store.journal import Journal, Segment, abandoned_segments
from loopml.store.tables import predictions

__all__ = [
    "OnWrite",
    "PredictionLogWriter",
    "count_predictions",
    "insert_predictions",
    "insert_serialized",
    "known_predictions",
    "logged_prediction",
    "replay_journal",
    "write_predictions",
]

log = logging.getLogger(__name__)
_REPLAY_BATCH = 1000

OnWrite = Callable[[Connection, Sequence[dict[str, Any]]], None]
"""``on_write(connection, rows)``: runs inside the transaction that inserted ``rows`` (e.g. to enqueue
actions for them); only the rows actually inserted are passed, never ids that were already stored.
An exception rolls the whole transaction back, predictions included."""


def _insert_ignoring_duplicates(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(predictions).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(predictions).on_conflict_do_nothing(index_elements=["id"])
    return insert(predictions)  # other dialects: a duplicate id is an integrity error


def insert_predictions(
    connection: Connection, rows: Sequence[dict[str, Any]], *, on_write: OnWrite | None = None
) -> int:
    """Insert prediction records on ``connection`` (the caller's transaction), skipping stored ids.

    ``INSERT ... ON CONFLICT (id) DO NOTHING`` makes a replay idempotent. With ``on_write`` the ids
    actually inserted come back through ``RETURNING`` and ``on_write(connection, inserted_rows)``
    runs before the transaction commits. Returns how many rows were inserted.
    """
    if not rows:
        return 0
    statement = _insert_ignoring_duplicates(connection.dialect.name)
    # executemany row counts are not reliable across drivers; RETURNING says exactly what went in
    inserted_ids = set(connection.execute(statement.returning(predictions.c.id), list(rows)).scalars())
    inserted = [row for row in rows if row["id"] in inserted_ids]
    if inserted and on_write is not None:
        on_write(connection, inserted)
    return len(inserted)


_COLUMNS = ("id", "model_name", "model_version", "created_at", "origin", "inputs", "score", "output")


def insert_serialized(
    connection: Connection,
    *,
    model_name: str,
    model_version: int,
    created_at: datetime,
    origin: str,
    ids: Sequence[str],
    inputs: Sequence[str],
    scores: Sequence[float | None],
    outputs: Sequence[str],
) -> None:
    """Bulk-insert fresh prediction records whose ``inputs`` and ``output`` are already JSON.

    Batch scoring's fast path: no per-value processing, the driver's bulk insert (``executemany``
    on SQLite, ``COPY`` on PostgreSQL) in the caller's transaction. The ids must be new (a
    duplicate is an integrity error, not skipped).
    """
    if not ids:
        return
    dialect = connection.dialect
    when = predictions.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = when(created_at) if when else created_at
    fixed = (model_name, model_version, stamp, origin)
    if dialect.name == "sqlite":
        _insert_json_each(connection, fixed, ids, inputs, scores, outputs)
        return
    # in id order: time-ordered ids then append to the primary-key index instead of splitting pages
    rows = sorted(
        (i, *fixed, inp, sc, out) for i, inp, sc, out in zip(ids, inputs, scores, outputs, strict=True)
    )
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if dialect.name == "postgresql":
        _copy(connection, rows)
    elif mark is not None:
        values = ", ".join(mark for _ in _COLUMNS)
        connection.exec_driver_sql(f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({values})", rows)
    else:  # a driver with named parameters: the general path
        base = {"model_name": model_name, "model_version": model_version, "created_at": created_at}
        records = [
            {"id": pid, **base, "origin": origin, "inputs": orjson.loads(inp), "score": sc}
            | {"output": orjson.loads(out)}
            for pid, inp, sc, out in zip(ids, inputs, scores, outputs, strict=True)
        ]
        connection.execute(insert(predictions), records)


_JSON_EACH_ROWS = 10_000
_JSON_EACH = (
    f"INSERT INTO predictions ({', '.join(_COLUMNS)}) "
    # json_extract, not ->> and -> (SQLite 3.38+): Python may link an older system SQLite
    "SELECT json_extract(value, '$[0]'), ?, ?, ?, ?, json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), json_extract(value, '$[3]') FROM json_each(?)"
)


def _insert_json_each(
    connection: Connection,
    fixed: tuple[Any, ...],
    ids: Sequence[str],
    inputs: Sequence[str],
    scores: Sequence[float | None],
    outputs: Sequence[str],
) -> None:
    """SQLite: the whole chunk as one JSON array unpacked by ``json_each`` in one statement.

    ``executemany`` hands the GIL back and forth once per row (it is released around each
    ``sqlite3_step``), so a writer thread inserting beside a scoring thread advanced only while
    the scorer was in C code; one statement runs the whole insert in C with the GIL released.
    Rows go in id order (time-ordered ids append to the primary-key index).
    """
    order = sorted(range(len(ids)), key=ids.__getitem__) if not _ascending(ids) else list(range(len(ids)))
    texts = orjson.dumps([scores[i] for i in order]).decode()[1:-1].split(",")
    for start in range(0, len(texts), _JSON_EACH_ROWS):  # bounded: SQLite parses each text whole
        stop = start + _JSON_EACH_ROWS
        part = zip(order[start:stop], texts[start:stop], strict=True)
        body = ",".join(f'["{ids[i]}",{inputs[i]},{score},{outputs[i]}]' for i, score in part)
        connection.exec_driver_sql(_JSON_EACH, (*fixed, f"[{body}]"))


def _ascending(ids: Sequence[str]) -> bool:
    return all(map(str.__lt__, ids[:-1], ids[1:]))


def _copy(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL's ``COPY ... FROM STDIN`` on the connection (and transaction) SQLAlchemy holds."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY predictions ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def write_predictions(
    engine: Engine, rows: Sequence[dict[str, Any]], *, on_write: OnWrite | None = None
) -> int:
    """Insert prediction records (dicts with the columns of ``predictions``) in one transaction.

    Ids already in the store are skipped; ``on_write`` sees only the rows inserted, on the same
    connection and inside the same transaction. Returns how many rows were inserted.
    """
    if not rows:
        return 0
    with engine.begin() as connection:
        return insert_predictions(connection, rows, on_write=on_write)


def count_predictions(engine: Engine, name: str, origin: str | None = None) -> int:
    """How many predictions of model ``name`` (made by ``origin`` when given) the log holds."""
    p = predictions
    query = select(func.count()).select_from(p).where(p.c.model_name == name)
    if origin is not None:
        query = query.where(p.c.origin == origin)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def known_predictions(engine: Engine, ids: Iterable[str]) -> set[str]:
    """Which of the prediction ``ids`` the log holds."""
    wanted, found = list(ids), set[str]()
    with engine.connect() as conn:
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start : start + 5000]
            found.update(conn.execute(select(predictions.c.id).where(predictions.c.id.in_(chunk))).scalars())
    return found


def logged_prediction(engine: Engine, name: str, prediction_id: str | None = None) -> dict[str, Any] | None:
    """One logged prediction of model ``name`` as a dict of the ``predictions`` columns: ``prediction_id``
    (the newest one not made by a shadowing challenger when None), or None when there is none."""
    p = predictions
    query = select(p).where(p.c.model_name == name)
    if prediction_id is None:
        query = query.where(p.c.origin != Origin.SHADOW).order_by(p.c.created_at.desc(), p.c.id.desc())
    else:
        query = query.where(p.c.id == prediction_id)
    with engine.connect() as conn:
        row = conn.execute(query.limit(1)).mappings().first()
    return dict(row) if row is not None else None


_Item = tuple[Segment | None, list[dict[str, Any]]]


class PredictionLogWriter:
    """A background thread that batches prediction records into the store.

    ``submit`` never blocks the caller on the database; ``close`` drains everything submitted. With
    ``journal_dir`` the records are first appended to this process's journal there (one
    ``os.write`` inside ``submit``), so a record whose ``submit`` returned survives a ``kill -9``;
    segments left by dead processes are replayed into the store when the writer starts.
    ``on_write(connection, rows)`` runs in the transaction that inserts each batch (and replay).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 500,
        flush_seconds: float = 0.2,
        on_write: OnWrite | None = None,
        journal_dir: str | os.PathLike[str] | None = None,
        fsync: bool = False,
    ) -> None:
        self.engine = engine
        self.on_write = on_write
        self.max_batch = max_batch
        self.flush_seconds = flush_seconds
        self.written = 0
        self.replayed = 0
        self.journal: Journal | None = None
        if journal_dir is not None:
            self.replayed = replay_journal(engine, journal_dir, on_write=on_write, raise_errors=False)
            self.journal = Journal(journal_dir, fsync=fsync)
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._pending = 0  # submitted and not yet written (or failed)
        self._drained = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="loopml-prediction-log", daemon=True)
        self._thread.start()

    def replay_abandoned(self) -> int:
        """Replay now the journal segments that other processes abandoned in this journal's folder (an
        API replica killed beside this one), as a start does; how many records went into the store."""
        if self.journal is None:
            return 0
        return replay_journal(self.engine, self.journal.directory, on_write=self.on_write, raise_errors=False)

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Journal the records (when there is a journal), then queue them for the store."""
        if not rows:
            return
        segment = self.journal.append(rows) if self.journal is not None else None
        with self._drained:
            self._pending += len(rows)
        self._queue.put((segment, list(rows)))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False if ``timeout`` passed first."""
        with self._drained:
            return self._drained.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the thread (and close the journal)."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self.journal is not None and not self._thread.is_alive():
            self.journal.close()

    def _run(self) -> None:
        done = False
        while not done:
            items, done = self._take_batch()
            batch = [row for _, rows in items for row in rows]
            ok = True
            try:
                self.written += write_predictions(self.engine, batch, on_write=self.on_write)
            except Exception as exc:  # the log must never take the API down; keep the error visible
                ok = False
                kept = " (kept in the journal for replay)" if self.journal is not None else ""
                log.error(
                    "could not write %d prediction records%s: %s",
                    len(batch),
                    kept,
                    str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                )
            self._settle(items, ok)

    def _settle(self, items: list[_Item], ok: bool) -> None:
        if self.journal is not None:
            for segment, rows in items:
                if segment is not None:
                    self.journal.committed(segment, len(rows), ok=ok)
        with self._drained:
            self._pending -= sum(len(rows) for _, rows in items)
            self._drained.notify_all()

    def _take_batch(self) -> tuple[list[_Item], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        items, size = [first], len(first[1])
        while size < self.max_batch:
            try:
                item = self._queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
            size += len(item[1])
        return items, False


def replay_journal(
    engine: Engine,
    directory: str | os.PathLike[str],
    *,
    on_write: OnWrite | None = None,
    raise_errors: bool = True,
) -> int:
    """Move the records of abandoned journal segments in ``directory`` into the store; how many.

    Abandoned: no process holds the segment (its writer was killed, or closed it with records the
    store refused). Ids already stored are skipped, so replaying twice, or replaying what the dead
    process had committed already, stores nothing twice; ``on_write`` sees only the rows inserted.
    A store error leaves the segment in place for the next replay and raises (or, without
    ``raise_errors``, is logged: the API must start even while the store is down).
    """
    total = 0
    with closing(abandoned_segments(directory)) as segments:
        try:
            for path, records in segments:
                count = sum(
                    write_predictions(engine, records[i : i + _REPLAY_BATCH], on_write=on_write)
                    for i in range(0, len(records), _REPLAY_BATCH)
                )
                log.info("replayed %d of %d journal records from %s", count, len(records), path.name)
                total += count
        except Exception as exc:
            if raise_errors:
                raise
            log.error("could not replay the prediction journal in %s: %s", directory, exc)
    return total
