"""Streaming a Parquet file keeps one row group's bytes, not the whole file's (batch memory stays flat).

pyarrow's default ``pre_buffer`` kept every byte range a reader had read until the reader was
dropped, so batch scoring's peak memory grew with the input file (issue 5's memory floor). The
check counts Arrow's own allocated bytes (exact accounting, not RSS), so it is not timing- or
machine-dependent.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.sources import ParquetSource
from loopml.validate.snapshots import iter_parquet

ROWS, GROUP = 400_000, 10_000


def _many_row_groups(path: Path) -> int:
    rng = np.random.default_rng(0)  # random values: the file stays as large as its data (~7.6 MB)
    table = pa.table({"a": rng.random(ROWS), "b": rng.integers(0, 1 << 40, ROWS)})
    pq.write_table(table, path, row_group_size=GROUP)
    return path.stat().st_size


def _peak_arrow_bytes(frames: Iterable[pd.DataFrame]) -> tuple[int, int]:
    base, peak, rows = pa.total_allocated_bytes(), 0, 0
    for frame in frames:
        rows += len(frame)
        peak = max(peak, pa.total_allocated_bytes() - base)
    return peak, rows


def test_parquet_source_streams_without_holding_the_file(tmp_path: Path) -> None:
    size = _many_row_groups(tmp_path / "rows.parquet")
    peak, rows = _peak_arrow_bytes(ParquetSource(str(tmp_path / "rows.parquet")).iter_batches(GROUP))
    assert rows == ROWS
    # pre-buffered reading held ~110% of the file by the last batch; streaming holds ~8%
    assert peak < size / 4, f"{peak:,} bytes of Arrow memory live while streaming a {size:,}-byte file"


def test_snapshot_reader_streams_without_holding_the_file(tmp_path: Path) -> None:
    size = _many_row_groups(tmp_path / "rows.parquet")
    peak, rows = _peak_arrow_bytes(iter_parquet(tmp_path / "rows.parquet", batch_rows=GROUP))
    assert rows == ROWS
    assert peak < size / 4, f"{peak:,} bytes of Arrow memory live while streaming a {size:,}-byte file"
