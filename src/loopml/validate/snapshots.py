"""Snapshot files: Parquet written chunk by chunk with a fixed schema, then hashed and stored."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.errors import DataError
from loopml.sources.files import stream_parquet
from loopml.validate.checks import coerce_column
from loopml.validate.contract import ColumnSpec, DataContract

__all__ = ["ParquetSink", "arrow_schema", "conform", "file_sha256", "iter_parquet"]


def _arrow_type(spec: ColumnSpec) -> pa.DataType:
    if spec.dtype == "int":
        return pa.float64() if spec.nullable else pa.int64()  # missing ints stay NaN in a float column
    return {
        "float": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "datetime": pa.timestamp("ns"),
    }[spec.dtype]


def arrow_schema(contract: DataContract) -> pa.Schema:
    """The Parquet schema of a snapshot made under ``contract``."""
    return pa.schema([pa.field(spec.name, _arrow_type(spec)) for spec in contract.columns])


def conform(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """Rows of an older snapshot in the shape of ``contract`` (new columns missing, dropped ones gone)."""
    out = pd.DataFrame(index=frame.index)
    for spec in contract.columns:
        column = frame[spec.name] if spec.name in frame.columns else pd.Series(None, index=frame.index)
        out[spec.name] = coerce_column(column, spec)
    return out


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """Dictionary encoding for text only: ids, times and measurements are mostly distinct, and
    trying a dictionary on them costs a third of the writer's time for nothing."""
    text = [
        field.name
        for field in schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]
    return pq.ParquetWriter(path, schema, use_dictionary=text or False)


class ParquetSink:
    """A Parquet file written one frame at a time; ``schema`` fixed up front or taken from the first frame.

    Encoding and compression run on a background thread (pyarrow releases the GIL), overlapping
    the next chunk's reading and checking; at most one table is in flight, so memory stays bounded.
    """

    def __init__(self, path: Path, schema: pa.Schema | None = None) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-parquet")
        self._pending: Future[None] | None = None
        if schema is not None:
            self._writer = _writer(path, schema)

    def write(self, frame: pd.DataFrame) -> None:
        if self._writer is None:
            if not len(frame):
                return
            self.schema = pa.Schema.from_pandas(frame, preserve_index=False).remove_metadata()
            self._writer = _writer(self.path, self.schema)
        assert self.schema is not None
        frame = frame.reindex(columns=self.schema.names)
        try:
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False, safe=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"cannot write snapshot rows to Parquet: {' '.join(str(exc).split())}") from None
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table.replace_schema_metadata(None))
        self.rows += len(frame)

    def write_table(self, table: pa.Table) -> None:
        """Append rows that already have :attr:`schema` (the columnar ingest's accepted rows); the
        file is byte for byte the one :meth:`write` makes of the same rows."""
        if self._writer is None:
            if not table.num_rows:
                return
            self.schema = table.schema
            self._writer = _writer(self.path, table.schema)
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table.replace_schema_metadata(None))
        self.rows += table.num_rows

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises a failed write here

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def iter_parquet(
    source: Any, batch_rows: int = 100_000, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``batch_rows`` rows from a Parquet file (a path or an open file object)."""
    parquet = stream_parquet(source)
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        yield batch.to_pandas()
