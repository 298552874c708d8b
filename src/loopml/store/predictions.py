"""The prediction log: every prediction the API or a batch job makes, written off the request path."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, insert

from loopml.store.tables import predictions

__all__ = ["PredictionLogWriter", "write_predictions"]

log = logging.getLogger(__name__)


def write_predictions(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Insert prediction records (dicts with the columns of the ``predictions`` table)."""
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(predictions), list(rows))


class PredictionLogWriter:
    """A background thread that batches prediction records into the store.

    ``submit`` never blocks the caller on the database; ``close`` drains everything submitted.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 500, flush_seconds: float = 0.2) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="loopml-prediction-log", daemon=True)
        self._thread.start()
        self.written = 0
        self._pending = 0  # submitted and not yet written (or failed)
        self._drained = threading.Condition()

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue records for writing."""
        with self._drained:
            self._pending += len(rows)
        for row in rows:
            self._queue.put(row)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False if ``timeout`` passed first."""
        with self._drained:
            return self._drained.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        done = False
        while not done:
            batch, done = self._take_batch()
            try:
                write_predictions(self.engine, batch)
                self.written += len(batch)
            except Exception as exc:  # the log must never take the API down; keep the error visible
                log.error(
                    "could not write %d prediction records: %s", len(batch), str(exc).splitlines()[0][:300]
                )
            with self._drained:
                self._pending -= len(batch)
                self._drained.notify_all()

    def _take_batch(self) -> tuple[list[dict[str, Any]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False
