"""Shadow scoring: while a retraining cycle shadows a challenger (``retrain.shadow``), the API scores
every request with it too, off the request path, and logs those predictions with origin ``shadow``.
They are never returned to the client; the cycle compares them with the champion's on the same rows."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any

from loopml.errors import LoopMLError
from loopml.serve.state import ModelHolder
from loopml.store import PredictionLogWriter, Store, utcnow

__all__ = ["ShadowScorer"]

log = logging.getLogger(__name__)

_Item = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int]


class ShadowScorer:
    """A background thread that scores requests with the ``challenger`` alias after they were answered.

    :meth:`submit` never blocks: when the thread falls behind by ``max_queue`` requests, newer ones are
    dropped (and counted), so shadowing can never slow serving down. Nothing is scored while the
    challenger is the model being served (no cycle is shadowing).
    """

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        refresh: float = 2.0,
        max_queue: int = 10_000,
        online_url: str | None = None,
    ) -> None:
        # online_url: the challenger reads its window features from the state the replicas share
        self.holder = ModelHolder(store, name, "challenger", refresh, online_url=online_url)
        self.writer = PredictionLogWriter(store.engine)
        self.dropped = 0
        self.scored = 0
        self._queue: queue.Queue[_Item | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="loopml-shadow", daemon=True)
        self._thread.start()

    def submit(
        self,
        rows: list[dict[str, Any]],
        inputs: list[dict[str, Any]],
        results: list[dict[str, Any]],
        served_version: int,
    ) -> None:
        """Queue answered requests: their scored rows, logged inputs, champion results and version."""
        try:
            self._queue.put_nowait((rows, inputs, results, served_version))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 30.0) -> None:
        """Score what is queued, write it, and stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self.writer.close(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._score(*item)
            except Exception as exc:  # shadowing must never take the API down; keep the error visible
                log.error("shadow scoring failed: %s", str(exc).splitlines()[0][:300] if str(exc) else exc)

    def _score(
        self,
        rows: list[dict[str, Any]],
        inputs: list[dict[str, Any]],
        results: list[dict[str, Any]],
        served: int,
    ) -> None:
        try:
            model = self.holder.get().model
        except LoopMLError:  # no challenger: nothing to shadow
            return
        if model.version.version == served:
            return
        outputs = model.outputs(model.predict_records(rows))
        now = utcnow()
        self.writer.submit(
            [
                {
                    "id": str(uuid.uuid4()),
                    "model_name": model.name,
                    "model_version": model.version.version,
                    "created_at": now,
                    "origin": "shadow",
                    "inputs": logged,
                    "score": out["score"],
                    "output": {**out, "shadow_of": result["prediction_id"]},
                }
                for out, logged, result in zip(outputs, inputs, results, strict=True)
            ]
        )
        self.scored += len(rows)
