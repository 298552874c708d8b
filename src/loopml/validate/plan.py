"""What an ingest reads and writes: its plan (source, parent version, watermark), the batches it
reads, the rows past the watermark, and its running totals. Shared by the local ingest
(:mod:`loopml.validate.ingest`), the one on Dask (:mod:`loopml.validate.cluster`) and schema changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.config import Settings
from loopml.errors import DataError
from loopml.sources import (
    CsvSource,
    IncrementalSource,
    ParquetSource,
    Source,
    check_input_path,
    source_from_config,
)
from loopml.store import Store
from loopml.validate.checks import coerce_column
from loopml.validate.contract import DataContract
from loopml.validate.datasets import QUARANTINE_COLUMNS, DatasetVersion, latest_version, read_watermark
from loopml.validate.snapshots import ParquetSink

__all__ = [
    "IngestRun",
    "Plan",
    "Progress",
    "batches",
    "contracts_dir",
    "new_rows",
    "open_input",
    "plan_ingest",
]

Progress = Callable[[str, int], None]


def contracts_dir(project_dir: Path) -> Path:
    """Where contract YAML files live: ``<project>/contracts``."""
    return project_dir / "contracts"


def open_input(path: Path) -> Source:
    """A source for one file given on the command line (``--input``, ``.csv`` or ``.parquet``)."""
    check_input_path(path)
    if path.suffix.lower() == ".csv":
        return CsvSource(str(path))
    if path.suffix.lower() == ".parquet":
        return ParquetSource(str(path))
    raise DataError(
        f"input file '{path}' is neither .csv nor .parquet.", hint="Convert it to CSV or Parquet."
    )


@dataclass
class Plan:
    source: Source
    parent: DatasetVersion | None
    append: bool
    watermark_column: str | None
    after: Any
    strip: tuple[str, ...] = ()  # columns dropped from every batch read (see strip_columns)

    def strip_columns(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without the columns of :attr:`strip`: an exported quarantine file, fixed and
        ingested again, brings its ``_row``, ``_rule``, ``_column`` and ``_value`` along."""
        drop = [c for c in self.strip if c in frame.columns]
        return frame.drop(columns=drop) if drop else frame


def plan_ingest(settings: Settings, store: Store, input_path: Path | None) -> Plan:
    parent = latest_version(store, settings.name)
    if input_path is not None:  # re-ingesting fixed (e.g. exported quarantine) rows: added to the data set
        return Plan(open_input(input_path), parent, parent is not None, None, None, QUARANTINE_COLUMNS)
    column = settings.source.watermark
    after = read_watermark(store, settings.name, column) if column else None
    source = source_from_config(settings.source, settings.project_dir)
    return Plan(source, parent, column is not None and parent is not None, column, after)


def batches(plan: Plan, spec_dtype: str | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if plan.watermark_column and plan.after is not None and isinstance(plan.source, IncrementalSource):
        value = pd.Timestamp(plan.after).to_pydatetime() if spec_dtype == "datetime" else plan.after
        frames = plan.source.iter_batches_after(plan.watermark_column, value, chunk_rows)
    else:
        frames = plan.source.iter_batches(chunk_rows)
    for frame in frames:
        yield plan.strip_columns(frame)


@dataclass
class IngestRun:
    accepted: ParquetSink
    quarantined: ParquetSink
    counts: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    watermark: Any = None
    added: tuple[str, ...] = ()


def new_rows(frame: pd.DataFrame, plan: Plan, contract: DataContract) -> tuple[pd.DataFrame, Any]:
    """Rows past the watermark, and the largest watermark among them."""
    column = plan.watermark_column
    if column is None:
        return frame, None
    if column not in frame.columns:
        raise DataError(
            f"watermark column '{column}' is not in the source ({', '.join(map(str, frame.columns[:8]))}).",
            hint="Fix source.watermark in loopml.yaml.",
        )
    value = coerce_column(frame[column], contract.column(column))
    if plan.after is not None:
        after = pd.Timestamp(plan.after) if contract.column(column).dtype == "datetime" else plan.after
        keep = (value > after).to_numpy(dtype=bool, na_value=False)
        frame, value = frame.loc[keep], value.loc[keep]
    return frame, value.max() if value.notna().any() else None
