"""The Source protocol: anything that yields the rows of a data set as pandas frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import pandas as pd

__all__ = ["IncrementalSource", "SchemaSource", "Source", "read_all", "source_columns"]


@runtime_checkable
class Source(Protocol):
    """A readable data set. Built-ins: ``csv``, ``parquet``, ``sql``; more through ``loopml.sources``."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description recorded with every snapshot made from this source."""
        ...

    def iter_batches(self, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """Yield the rows in order, in frames of at most ``batch_rows`` rows."""
        ...


@runtime_checkable
class IncrementalSource(Source, Protocol):
    """A source that can skip rows it would not need for an incremental ingest (for example in SQL).

    Optional: for any other source, ingest reads everything and keeps the rows newer than the
    watermark itself. Either way the rows are compared again after type coercion, so an
    implementation may return more rows than asked for, never fewer.
    """

    def iter_batches_after(
        self, column: str, after: Any, batch_rows: int = 100_000
    ) -> Iterator[pd.DataFrame]:
        """Yield the rows whose ``column`` is greater than ``after``."""
        ...


@runtime_checkable
class SchemaSource(Source, Protocol):
    """A source that can name its columns without reading its rows (a CSV header, a Parquet schema,
    an SQL result's columns): what ``loopml check`` compares the project file with.

    Optional: for any other source, :func:`source_columns` reads a first batch of one row.
    """

    def column_names(self) -> list[str]:
        """The names of the columns, in order."""
        ...


def source_columns(source: Source) -> list[str]:
    """The column names of ``source``: its own :meth:`SchemaSource.column_names`, or its first batch's."""
    if isinstance(source, SchemaSource):
        return source.column_names()
    first = next(iter(source.iter_batches(1)), None)
    return [] if first is None else [str(c) for c in first.columns]


def read_all(source: Source, batch_rows: int = 250_000) -> pd.DataFrame:
    """Read a whole source into one frame."""
    frames = list(source.iter_batches(batch_rows))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
