"""Batch scoring: a file in, a file out, in chunks, through the same LoadedModel as the API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.batch.log import write_log
from loopml.batch.outputs import Output, database_url, is_url, open_output, shown_url
from loopml.batch.quarantine import Quarantine
from loopml.errors import DataError, InputError
from loopml.scoring import LoadedModel
from loopml.sources import CsvSource, ParquetSource, Source, SqlSource
from loopml.store import OnWrite, Store
from loopml.validate import ScoringPolicy

_HEX_POSITIONS = [i for i in range(36) if i not in (8, 13, 18, 23)]  # where a UUID's dashes are not

__all__ = [
    "BatchResult",
    "SequenceCarry",
    "assemble",
    "batch_result",
    "forget_unreachable",
    "id_columns",
    "new_ids",
    "open_input",
    "prepare",
    "score_file",
    "write_log",
]


@dataclass(frozen=True)
class BatchResult:
    """What a batch run did: ``rows`` scored into ``output``; ``quarantined`` rows that break the
    model's data contract, not scored, written to ``quarantine`` (a file, or ``<table> at <URL>``;
    None when there were none), counted by rule in ``quarantine_counts``; values outside a column's
    categories scored as missing (``on_unknown_category: missing``), counted by column in
    ``scored_as_missing``. ``rows + quarantined`` is every input row."""

    rows: int
    output: str
    model_version: int
    partitions: int = 1
    table: str | None = None  # the output table when ``output`` is a database URL
    quarantined: int = 0
    quarantine: str | None = None
    quarantine_counts: dict[str, int] = field(default_factory=dict)
    scored_as_missing: dict[str, int] = field(default_factory=dict)


def _source_for(path: Path) -> Source:
    if path.suffix == ".csv":
        return CsvSource(str(path))
    if path.suffix == ".parquet" or path.is_dir():
        return ParquetSource(str(path))
    raise InputError(f"input '{path}' must be a .csv or .parquet file (or a folder of Parquet files).")


def open_input(
    target: str | Path, *, table: str | None = None, query: str | None = None, base_dir: Path | None = None
) -> Source:
    """The rows to score: a CSV or Parquet file (or a folder of Parquet files), or the ``table`` or
    ``query`` (exactly one) of a database URL, streamed by :class:`~loopml.sources.SqlSource`. A
    relative SQLite path in the URL starts at ``base_dir`` (the project), as in ``source.url``."""
    if not is_url(target):
        if table is not None or query is not None:
            raise InputError(
                f"--input-table / --input-query read a database, but --input '{target}' is a file; pass a "
                "database URL as --input, e.g. sqlite:///data/rows.db or postgresql://user@host/db."
            )
        return _source_for(Path(target))
    if (table is None) == (query is None):
        raise InputError(
            f"input '{shown_url(str(target))}' is a database URL: pass exactly one of --input-table NAME or "
            "--input-query 'SELECT ...'."
        )
    url = database_url(str(target), "input", base_dir)
    database = url.database or ":memory:"
    if url.get_backend_name() == "sqlite" and database != ":memory:" and not Path(database).is_file():
        raise InputError(
            f"input database file '{database}' does not exist; a relative SQLite path starts at the project."
        )
    return _SqlInput(SqlSource(url.render_as_string(hide_password=False), table=table, query=query))


class _SqlInput:
    """An :class:`SqlSource` whose errors name ``loopml predict``'s options instead of loopml.yaml's."""

    def __init__(self, source: SqlSource) -> None:
        self.source = source

    def describe(self) -> dict[str, Any]:
        return self.source.describe()

    def iter_batches(self, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        try:
            yield from self.source.iter_batches(batch_rows)
        except DataError as exc:
            hint = "Check --input-table / --input-query and that the database at --input is reachable."
            raise DataError(exc.message, hint=hint) from None


def prepare(
    model: LoadedModel, chunk: pd.DataFrame, coerced: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce a chunk (unless given its ``coerced`` values), add it to the window state, then compute
    its features: ``(coerced, features)``. The state is the model's: its own in-process history, or
    the one the API replicas share (a model loaded with ``online_url``), which the chunk then joins.

    Observing before computing the features is what training does (``window_features`` fills the
    history with the whole frame, then queries it): a window covers only events strictly before
    ``t - delay``, so an event never sees itself or anything later, while it does see the earlier
    events of its own chunk. For input sorted by event time the result is therefore the same for any
    chunk size, and equals an API that received the same events one at a time in time order.
    """
    coerced = model.coerce(chunk) if coerced is None else coerced
    forget_unreachable(model, coerced)
    return coerced, model.features(coerced, observe=True)


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
    raw = raw[np.lexsort(raw.T[::-1])]  # ascending: the batch appends to the index in order
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


def id_columns(model: LoadedModel, chunk: pd.DataFrame) -> pd.DataFrame:
    """The row-id column of the input ``chunk`` as it was read (integer ids stay integers, and an
    integer id read as text, from a file whose quarantined rows held text there, becomes one again;
    empty frame when the contract has none or it is absent)."""
    id_column = model.contract.id_column
    keep = [id_column] if id_column and id_column in chunk.columns else []
    ids = chunk[keep].reset_index(drop=True)
    if (
        keep
        and model.contract.column(keep[0]).dtype == "int"
        and not pd.api.types.is_integer_dtype(ids[keep[0]])
    ):
        ids[keep[0]] = pd.to_numeric(ids[keep[0]], errors="coerce").astype("Int64")
    return ids


class SequenceCarry:
    """For a model with sequence window features (a :class:`~loopml.features.CycleWindows` step): each
    unit's last ``window - 1`` rows from earlier chunks, put in front of the next chunk as context.

    A row's features read its unit's previous rows; without the carry, the rows of a unit whose
    history straddles a chunk boundary would lose the rows before it. With it, each chunk is scored
    with the context its units need, and the context rows' own scores are dropped. Exact when each
    unit's rows arrive in order across chunks (sorted by unit then order, or by order); a unit whose
    row comes in a later chunk than a later row of its own is an error naming the fix.
    """

    def __init__(self, entity: str, order: str, window: int) -> None:
        self.entity, self.order, self.keep = entity, order, max(window - 1, 1)
        self.tail: pd.DataFrame | None = None

    @classmethod
    def for_model(cls, model: LoadedModel) -> SequenceCarry | None:
        """The carry ``model`` needs, or None for a model without sequence windows."""
        step = _sequence_step(model.pipeline)
        return None if step is None else cls(step.entity, step.order, step.window)

    def with_context(self, features: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """``features`` behind the earlier rows of its units; returns the frame and how many rows lead."""
        tail, self.tail = self.tail, self._last(features if self.tail is None else [self.tail, features])
        if tail is None or features.empty:
            return features, 0
        context = tail[tail[self.entity].isin(features[self.entity].unique())]
        if context.empty:
            return features, 0
        self._check_order(context, features)
        return pd.concat([context, features], ignore_index=True), len(context)

    def _last(self, frames: pd.DataFrame | list[pd.DataFrame]) -> pd.DataFrame:
        frame = frames if isinstance(frames, pd.DataFrame) else pd.concat(frames, ignore_index=True)
        ordered = frame.sort_values([self.entity, self.order], kind="stable")
        return ordered.groupby(self.entity, sort=False).tail(self.keep).reset_index(drop=True)

    def _check_order(self, context: pd.DataFrame, features: pd.DataFrame) -> None:
        seen = context.groupby(self.entity)[self.order].max()
        first = features.groupby(self.entity)[self.order].min()
        late = first[first <= seen.reindex(first.index)]
        if len(late):
            unit = late.index[0]
            raise InputError(
                f"input rows of {self.entity} {unit} are out of order across chunks ({self.order} "
                f"{late.iloc[0]} after {seen[unit]}); sort the input by {self.entity}, {self.order}."
            )


def _sequence_step(step: Any) -> Any:
    """The :class:`~loopml.features.CycleWindows` inside a (nested) pipeline, or None."""
    from loopml.features import CycleWindows

    if isinstance(step, CycleWindows):
        return step
    for _, inner in getattr(step, "steps", None) or []:
        found = _sequence_step(inner)
        if found is not None:
            return found
    return None


def _scored(
    model: LoadedModel,
    chunk: pd.DataFrame,
    coerced: pd.DataFrame,
    carry: SequenceCarry | None,
    explain: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    coerced, features = prepare(model, chunk, coerced)
    features, skip = carry.with_context(features) if carry is not None else (features, 0)
    if explain is not None:  # explanation columns (see Explainer.columns), from the scoring matrix
        scores, explained = model.score_explained(features, explain)
        scored = assemble(model, id_columns(model, chunk), scores[skip:], new_ids(len(coerced)))
        return coerced, scored.assign(**model.explainer.columns(explained[skip:], explain))
    scores = model.score(features)[skip:]
    return coerced, assemble(model, id_columns(model, chunk), scores, new_ids(len(coerced)))


def score_file(
    store: Store,
    model: LoadedModel,
    input_path: str | Path | Source,
    output_path: str | Path | Output,
    *,
    chunk_rows: int = 100_000,
    log_predictions: bool = True,
    progress: Callable[[int], None] | None = None,
    on_write: OnWrite | None = None,
    policy: ScoringPolicy | None = None,
    explain: int | None = None,
) -> BatchResult:
    """Score every row of ``input_path`` into ``output_path`` (.parquet or .csv), chunk by chunk.
    ``explain`` (a top k) adds each row's feature contributions as ``explain_*`` columns.

    Either may instead be an opened :func:`open_input` source or :func:`~loopml.batch.outputs.open_output`
    writer (a table or query of a database in, a database table out).

    ``on_write`` runs in each chunk's prediction-log transaction (the actions outbox hook). One
    writer thread logs and writes chunk ``n`` while chunk ``n + 1`` is scored (SQLite, Parquet and
    LightGBM release the GIL), never more than one chunk behind, so memory stays at two chunks.

    A row that breaks the model's data contract is not scored: it goes to the quarantine output beside
    ``output_path`` (see :mod:`loopml.batch.quarantine`; ``policy``: the project's
    :class:`~loopml.validate.ScoringPolicy`, for unknown categories).
    """
    source = open_input(input_path) if isinstance(input_path, str | Path) else input_path
    output = open_output(output_path) if isinstance(output_path, str | Path) else output_path
    sink = _Sink(store, model, output, log_predictions, on_write)
    carry = SequenceCarry.for_model(model)
    rows = 0
    with (
        Quarantine(model, policy, output) as quarantine,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-batch-write") as pool,
    ):
        pending: Future[None] | None = None
        try:
            for chunk in source.iter_batches(chunk_rows):
                kept, coerced = quarantine.split(chunk)
                if len(kept):
                    coerced, scored = _scored(model, kept, coerced, carry, explain)
                    if pending is not None:
                        pending.result()  # a failed write stops the run here, with its own error
                    pending = pool.submit(sink.write, coerced, scored)
                    rows += len(scored)
                if progress:
                    progress(len(chunk))
            if pending is not None:
                pending.result()
        finally:
            if pending is not None:
                pending.exception()  # let the writer finish before the file is closed
            sink.close()
    return batch_result(model, rows, output.target, quarantine, table=output.table)


def batch_result(
    model: LoadedModel, rows: int, output: str, quarantine: Quarantine, **more: Any
) -> BatchResult:
    """The :class:`BatchResult` of a run that scored ``rows`` into ``output``, with its quarantine."""
    return BatchResult(
        rows=rows,
        output=output,
        model_version=model.version.version,
        quarantined=quarantine.rows,
        quarantine=quarantine.target,
        quarantine_counts=dict(quarantine.counts),
        scored_as_missing=dict(quarantine.as_missing),
        **more,
    )


class _Sink:
    """The writer thread's side: the prediction log and the output, one chunk at a time."""

    def __init__(
        self, store: Store, model: LoadedModel, output: Output, log: bool, on_write: OnWrite | None
    ) -> None:
        self.store, self.model, self.output, self.log, self.on_write = store, model, output, log, on_write

    def write(self, coerced: pd.DataFrame, scored: pd.DataFrame) -> None:
        if self.log:
            write_log(self.store, self.model, coerced, scored, on_write=self.on_write)
        self.output.write(scored)

    def close(self) -> None:
        self.output.close()
