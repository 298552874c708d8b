"""Batch scoring: a file in, a file out, in chunks, through the same LoadedModel as the API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.batch.log import write_log
from loopml.errors import InputError
from loopml.registry import LoadedModel
from loopml.sources import CsvSource, ParquetSource, Source
from loopml.store import OnWrite, Store

_HEX_POSITIONS = [i for i in range(36) if i not in (8, 13, 18, 23)]  # where a UUID's dashes are not

__all__ = [
    "BatchResult",
    "assemble",
    "forget_unreachable",
    "id_columns",
    "new_ids",
    "prepare",
    "score_file",
    "write_log",
]


@dataclass(frozen=True)
class BatchResult:
    """What a batch run did."""

    rows: int
    output: str
    model_version: int
    partitions: int = 1


def _source_for(path: Path) -> Source:
    if path.suffix == ".csv":
        return CsvSource(str(path))
    if path.suffix == ".parquet" or path.is_dir():
        return ParquetSource(str(path))
    raise InputError(f"input '{path}' must be a .csv or .parquet file (or a folder of Parquet files).")


def prepare(model: LoadedModel, chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce a chunk, add it to the window history, then compute its features: ``(coerced, features)``.

    Observing before computing the features is what training does (``window_features`` fills the
    history with the whole frame, then queries it): a window covers only events strictly before
    ``t - delay``, so an event never sees itself or anything later, while it does see the earlier
    events of its own chunk. For input sorted by event time the result is therefore the same for any
    chunk size, and equals an API that received the same events one at a time in time order.
    """
    coerced = model.coerce(chunk)
    forget_unreachable(model, coerced)
    model.observe(coerced)
    return coerced, model.features(coerced)


def forget_unreachable(model: LoadedModel, coerced: pd.DataFrame) -> None:
    """Keep the window history bounded: drop events no row of this chunk or a later one can reach.

    A chunk's rows read back at most ``reach`` (the longest window plus its delay) from their event
    times. Events older than ``earliest row - 2 * reach`` are forgotten, so batch memory stays flat
    however many rows stream through; input sorted by event time (or out of order by less than one
    longest window) gets exactly the features it would get with the whole history kept.
    """
    history = model.history
    if history is None or history.event_time not in coerced.columns or coerced.empty:
        return
    times = coerced[history.event_time].dropna()
    reach = history.reach_ms
    if times.empty or reach <= 0:
        return
    earliest = int(pd.Timestamp(times.min()).value // 1_000_000)  # ns -> ms
    history.forget_before(earliest - 2 * reach)


def new_ids(rows: int) -> list[str]:
    """Fresh prediction ids: time-ordered (version 7, RFC 9562) UUID strings, made in bulk.

    48 bits of Unix milliseconds, then 74 random bits: unique like version 4, but a batch's ids
    land at the end of the ``predictions`` primary-key index instead of all over it, so logging
    the 10,000,000th row costs what the first did. (``uuid4()`` would also cost ~2 us each.)
    """
    raw = np.frombuffer(os.urandom(16 * rows), dtype=np.uint8).reshape(rows, 16).copy()
    millis = time.time_ns() // 1_000_000
    raw[:, :6] = np.frombuffer(millis.to_bytes(8, "big")[2:], dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70  # version 7
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype=np.uint8).reshape(rows, 32)
    text = np.full((rows, 36), ord("-"), dtype=np.uint8)
    text[:, _HEX_POSITIONS] = digits
    flat = text.tobytes().decode("ascii")
    return [flat[i : i + 36] for i in range(0, 36 * rows, 36)]


def assemble(
    model: LoadedModel, ids: pd.DataFrame, scores: np.ndarray, prediction_ids: list[str]
) -> pd.DataFrame:
    """The output rows: prediction id, the row id (when the contract has one), score, label, version."""
    outputs = model.outputs(scores)
    names = list(outputs[0]) if outputs else []
    # column by column: pandas' list-of-dicts constructor cost ~6 us a row
    out = pd.DataFrame({k: [o[k] for o in outputs] for k in names}, index=range(len(scores)))
    for column in reversed(ids.columns):
        out.insert(0, column, ids[column].to_numpy())
    out.insert(0, "prediction_id", prediction_ids)
    out["model_version"] = model.version.version
    return out


def id_columns(model: LoadedModel, coerced: pd.DataFrame) -> pd.DataFrame:
    """The row-id column of ``coerced`` (empty frame when the contract has none or it is absent)."""
    id_column = model.contract.id_column
    keep = [id_column] if id_column and id_column in coerced.columns else []
    return coerced[keep].reset_index(drop=True)


def _scored(model: LoadedModel, chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    coerced, features = prepare(model, chunk)
    scores = model.score(features)
    return coerced, assemble(model, id_columns(model, coerced), scores, new_ids(len(coerced)))


def score_file(
    store: Store,
    model: LoadedModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = 100_000,
    log_predictions: bool = True,
    progress: Callable[[int], None] | None = None,
    on_write: OnWrite | None = None,
) -> BatchResult:
    """Score every row of ``input_path`` into ``output_path`` (.parquet or .csv), chunk by chunk.

    ``on_write`` runs in each chunk's prediction-log transaction (the actions outbox hook). One
    writer thread logs and writes chunk ``n`` while chunk ``n + 1`` is scored (SQLite, Parquet and
    LightGBM release the GIL), never more than one chunk behind, so memory stays at two chunks.
    """
    source, output = _source_for(Path(input_path)), Path(output_path)
    if output.suffix not in {".parquet", ".csv"}:
        raise InputError(f"output '{output}' must end in .parquet or .csv.")
    output.parent.mkdir(parents=True, exist_ok=True)
    sink = _Sink(store, model, output, log_predictions, on_write)
    rows = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-batch-write") as pool:
        pending: Future[None] | None = None
        try:
            for chunk in source.iter_batches(chunk_rows):
                coerced, scored = _scored(model, chunk)
                if pending is not None:
                    pending.result()  # a failed write stops the run here, with its own error
                pending = pool.submit(sink.write, coerced, scored)
                rows += len(scored)
                if progress:
                    progress(len(scored))
            if pending is not None:
                pending.result()
        finally:
            if pending is not None:
                pending.exception()  # let the writer finish before the file is closed
            sink.close()
    return BatchResult(rows=rows, output=str(output), model_version=model.version.version)


class _Sink:
    """The writer thread's side: the prediction log and the output file, one chunk at a time."""

    def __init__(
        self, store: Store, model: LoadedModel, output: Path, log: bool, on_write: OnWrite | None
    ) -> None:
        self.store, self.model, self.output, self.log, self.on_write = store, model, output, log, on_write
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, coerced: pd.DataFrame, scored: pd.DataFrame) -> None:
        if self.log:
            write_log(self.store, self.model, coerced, scored, on_write=self.on_write)
        if self.output.suffix == ".csv":
            scored.to_csv(self.output, mode="a" if self.rows else "w", header=not self.rows, index=False)
        else:
            table = pa.Table.from_pandas(scored, preserve_index=False)
            self.writer = self.writer or pq.ParquetWriter(self.output, table.schema)
            self.writer.write_table(table)
        self.rows += len(scored)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
