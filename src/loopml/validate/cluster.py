"""Ingest on a Dask cluster: the rows of a Parquet source checked against the contract on the workers.

The work is split where it can be split exactly. Each task is one piece of the source (whole row
groups of one file, about ``source.chunk_rows`` rows), read by the worker itself, and runs the same
per-row checks as the local ingest (:meth:`~loopml.validate.checks.ChunkChecker.check_rows`: filters,
types, nulls, ranges, categories, patterns). Duplicates are the one thing a piece cannot judge alone
(a repeated id may be in another file), so an ingest makes two passes:

1. every piece is checked and returns, per row, whether it is still open and its 64-bit duplicate
   keys (8 bytes a row); the client goes through the pieces in source order and finds the duplicates
   with the same :class:`~loopml.validate.seen.Seen` sets as the local ingest (seeded with the parent
   snapshot when appending);
2. every piece is checked again with its duplicates marked, and returns its accepted and quarantined
   rows, which the client writes in source order into the snapshot and the quarantine file.

So the snapshot, the quarantine (each row's rule, column and row number) and the counts per rule
equal the local ingest's. At most ``2 x workers`` pieces are in flight, so the client's memory is
bounded by the piece size whatever the data size (plus the 8 bytes a row of the duplicate keys,
which the local ingest keeps too). The workers must reach the source path (a shared disk or an
object-store URL).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml._dask import dask_client, worker_count
from loopml.config import CleaningConfig
from loopml.errors import ConfigError
from loopml.sources import ParquetSource
from loopml.validate.checks import CheckResult, ChunkChecker, schema_changes
from loopml.validate.contract import DataContract
from loopml.validate.plan import IngestRun, Plan, Progress, new_rows

__all__ = ["SAMPLE_ROWS", "check_on_dask", "pieces", "sample"]

SAMPLE_ROWS = 200_000  # rows a first Dask ingest infers its contract from, on the client

Marks = list[tuple[str, str, np.ndarray]]  # (rule, column, row numbers)


@dataclass(frozen=True)
class Piece:
    """Whole row groups of one Parquet file: one task."""

    file: str
    row_groups: tuple[int, ...]


def pieces(source: ParquetSource, chunk_rows: int) -> list[Piece]:
    """The source's files in read order, cut at row-group boundaries into pieces of about
    ``chunk_rows`` rows (a row group larger than that is a piece of its own)."""
    found = []
    for file in source.files():
        meta = source.open_file(file).metadata
        group: list[int] = []
        rows = 0
        for index in range(meta.num_row_groups):
            size = meta.row_group(index).num_rows
            if group and rows + size > chunk_rows:
                found.append(Piece(file, tuple(group)))
                group, rows = [], 0
            group.append(index)
            rows += size
        if group:
            found.append(Piece(file, tuple(group)))
    return found


def sample(frames: Iterator[pd.DataFrame], rows: int = SAMPLE_ROWS) -> Iterator[pd.DataFrame]:
    """The first ``rows`` rows of ``frames`` (what a first Dask ingest infers the contract from)."""
    taken = 0
    for frame in frames:
        yield frame.iloc[: rows - taken]
        taken += len(frame)
        if taken >= rows:
            return


@dataclass(frozen=True)
class _Work:
    """What every task needs: the source, the contract and cleaning, the watermark to read past."""

    source: ParquetSource
    contract: DataContract
    cleaning: CleaningConfig
    plan: Plan

    def check(self, piece: Piece) -> tuple[ChunkChecker, Any, pd.DataFrame, Any]:
        frame = self.plan.strip_columns(self.source.read_row_groups(piece.file, list(piece.row_groups)))
        new, mark = new_rows(frame, self.plan, self.contract)
        checker = ChunkChecker(self.contract, self.cleaning)
        return checker, checker.check_rows(new), frame, mark


@dataclass(frozen=True)
class _Keyed:
    rows: int
    added: tuple[str, ...]
    watermark: Any
    stats: dict[str, list[int]]
    open_: np.ndarray
    keys: dict[str, tuple[np.ndarray, np.ndarray]]


def _key_piece(work: _Work, piece: Piece) -> _Keyed:
    """Pass 1, on a worker: check a piece's rows on their own; their duplicate keys."""
    checker, rows, frame, mark = work.check(piece)
    added = schema_changes(frame, work.contract).added
    keys = checker.duplicate_keys(rows.coerced)
    return _Keyed(len(rows.frame), added, mark, checker.stats, rows.open_, keys)


def _write_piece(work: _Work, piece: Piece, offset: int, marks: Marks) -> CheckResult:
    """Pass 2, on a worker: check a piece again, mark its duplicates, split it."""
    checker, rows, _, _ = work.check(piece)
    for rule, column, where in marks:
        failed = np.zeros(len(rows.frame), dtype=bool)
        failed[where] = True
        rows.mark(rule, column, failed)
    checker.offset = offset
    return checker.result(rows)


def _in_order(
    client: Any, calls: Iterator[tuple[Callable[..., Any], tuple[Any, ...]]], finish: Callable[[Any], None]
) -> None:
    """Submit ``calls`` with at most ``2 x workers`` in flight; ``finish`` each result in order."""
    limit = 2 * worker_count(client)
    pending: deque[Any] = deque()
    for function, args in calls:
        pending.append(client.submit(function, *args, pure=False))
        while len(pending) >= limit:
            finish(pending.popleft().result())
    while pending:
        finish(pending.popleft().result())


def check_on_dask(
    address: Any,
    plan: Plan,
    checker: ChunkChecker,
    run: IngestRun,
    chunk_rows: int,
    progress: Progress | None = None,
) -> None:
    """Check every row of ``plan``'s Parquet source on Dask into ``run``'s sinks, as
    :func:`loopml.validate.ingest._check_all` does locally (``checker`` holds the seeded duplicates)."""
    if not isinstance(plan.source, ParquetSource):
        kind = plan.source.describe().get("kind", type(plan.source).__name__)
        raise ConfigError(
            f"ingest on Dask reads Parquet (a file or a folder of files), not a {kind} source; "
            "run `loopml ingest` without --dask, or convert the source to Parquet."
        )
    work = _Work(plan.source, checker.contract, checker.cleaning, plan)
    todo = pieces(plan.source, chunk_rows)
    offsets: list[int] = []
    duplicates: list[Marks] = []
    with dask_client(address, "ingest on Dask") as client:
        remote = client.scatter(work, broadcast=True, hash=False)

        def keyed(result: _Keyed) -> None:
            if not offsets:
                run.added = result.added
            offsets.append(checker.offset)
            checker.offset += result.rows
            found = checker.find_duplicates(result.open_, result.keys)
            duplicates.append([(rule, col, np.flatnonzero(dup)) for rule, col, dup in found if dup.any()])
            for name, (values, failed) in result.stats.items():
                checker.stats[name][0] += values
                checker.stats[name][1] += failed
            if result.watermark is not None and (run.watermark is None or result.watermark > run.watermark):
                run.watermark = result.watermark
            if progress:
                progress("checking rows on Dask (pass 1 of 2)", checker.offset)

        _in_order(client, ((_key_piece, (remote, p)) for p in todo), keyed)

        def written(result: CheckResult) -> None:
            run.accepted.write(result.accepted)
            run.quarantined.write(result.quarantined)
            run.rows_read += result.rows_read
            for rule, count in result.counts.items():
                run.counts[rule] = run.counts.get(rule, 0) + count
            if progress:
                progress("writing rows from Dask (pass 2 of 2)", run.rows_read)

        calls = ((_write_piece, (remote, p, offsets[i], duplicates[i])) for i, p in enumerate(todo))
        _in_order(client, calls, written)
