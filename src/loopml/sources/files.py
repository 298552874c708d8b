"""File sources: CSV and Parquet (a file, a folder of files, or a glob)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from loopml.errors import DataError

__all__ = ["CsvSource", "ParquetSource"]


def _expand(path: str, suffix: str) -> list[str]:
    if any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
    elif os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob(f"*{suffix}"))
    else:
        files = [path] if os.path.exists(path) else []
    if not files:
        raise DataError(
            f"source path '{path}' matches no {suffix} file.",
            hint="Check source.path in loopml.yaml (relative paths start at the project directory).",
        )
    return files


class CsvSource:
    """Comma-separated files read with pandas; ``options`` go to :func:`pandas.read_csv`."""

    def __init__(self, path: str, **options: Any) -> None:
        self.path = path
        self.options = options

    def describe(self) -> dict[str, Any]:
        return {"kind": "csv", "path": self.path, "options": self.options}

    def iter_batches(self, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        for file in _expand(self.path, ".csv"):
            try:
                yield from pd.read_csv(file, chunksize=batch_rows, **self.options)
            except (ValueError, pd.errors.ParserError) as exc:
                reason = " ".join(str(exc).split())  # pandas' messages can end in a newline
                raise DataError(f"cannot parse CSV file '{file}': {reason}") from None


class ParquetSource:
    """Parquet files read batch by batch with pyarrow, so memory stays bounded."""

    def __init__(self, path: str, columns: list[str] | None = None) -> None:
        self.path = path
        self.columns = columns

    def describe(self) -> dict[str, Any]:
        return {"kind": "parquet", "path": self.path, "columns": self.columns}

    def iter_batches(self, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        for file in _expand(self.path, ".parquet"):
            try:
                parquet = pq.ParquetFile(file)
            except Exception as exc:  # pyarrow raises several types for a corrupt file
                raise DataError(f"cannot read Parquet file '{file}': {' '.join(str(exc).split())}") from None
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=self.columns):
                yield batch.to_pandas()
