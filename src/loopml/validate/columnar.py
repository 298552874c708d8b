"""Enforcing a contract in one columnar pass: each chunk as read, checked with Arrow compute kernels.

pandas reads text into Arrow-backed columns, so text and times become Arrow arrays without a copy and
numbers are NumPy arrays already; every check is then one vectorised kernel over a column (no Python
per row), the accepted rows go to the Parquet writer as an Arrow table, and only the quarantined rows
are taken out of the chunk as pandas frames (with their values as read). The result
is the one :meth:`ChunkChecker.check <loopml.validate.checks.ChunkChecker.check>` gives (same rows
quarantined with the same rule, column and value, same typed rows, same ids remembered): both share
one checker's state, and a chunk this module does not cover (a column pandas read as Python objects or
bools, row filters, fills, clipping, patterns, whole-row de-duplication) goes through the checker
instead, so the two paths can alternate chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.config import CleaningConfig
from loopml.validate.checks import ChunkChecker, _quarantine, coerce_column, schema_changes
from loopml.validate.contract import ColumnSpec, DataContract
from loopml.validate.snapshots import arrow_schema

__all__ = ["ColumnarChecker", "ColumnarResult", "supported"]

_NUMBERS = ("int", "float")
_MIN_TIME, _MAX_TIME = pd.Timestamp("1678-01-01"), pd.Timestamp("2261-12-31")


def supported(contract: DataContract, cleaning: CleaningConfig) -> bool:
    """Whether chunks checked under ``contract`` and ``cleaning`` may take the columnar pass."""
    if (
        cleaning.filters
        or cleaning.missing
        or cleaning.dedupe == "row"
        or cleaning.out_of_range != "quarantine"
    ):
        return False
    return all(
        spec.dtype != "bool" and spec.pattern is None and (spec.categories is None or spec.dtype == "string")
        for spec in contract.columns
    )


def _arrow_text(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"


def _readable(series: pd.Series, spec: ColumnSpec) -> bool:
    """Whether the column arrived in a dtype this module converts exactly as the checker would."""
    if spec.dtype in _NUMBERS:
        return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if spec.dtype == "datetime":
        return _arrow_text(series) or (isinstance(series.dtype, np.dtype) and series.dtype.kind == "M")
    return _arrow_text(series)


@dataclass(frozen=True)
class ColumnarResult:
    """One checked chunk: the accepted rows (typed, per contract), the quarantined rows, counts by rule."""

    accepted: pa.Table
    quarantined: pd.DataFrame
    counts: dict[str, int]


class _Marks:
    """The first rule each row of a chunk failed (in the order of :mod:`loopml.validate.checks`)."""

    def __init__(self, rows: int) -> None:
        self.rule = np.full(rows, None, dtype=object)
        self.column = self.rule.copy()
        self.open_ = np.ones(rows, dtype=bool)

    def mark(self, name: str, col: str, failed: pa.ChunkedArray | pa.Array | np.ndarray) -> None:
        if not isinstance(failed, np.ndarray):
            if not pc.any(failed).as_py():
                return
            failed = np.asarray(failed.to_numpy(zero_copy_only=False), dtype=bool)
        elif not failed.any():
            return
        new = failed & self.open_
        if new.any():
            self.rule[new], self.column[new], self.open_[new] = name, col, False


class ColumnarChecker:
    """:meth:`ChunkChecker.check` in Arrow compute, sharing ``checker``'s ids, counts and row offset."""

    def __init__(self, checker: ChunkChecker) -> None:
        self.checker = checker
        self.schema = arrow_schema(checker.contract)
        self.enabled = supported(checker.contract, checker.cleaning)
        self._empty: dict[tuple[tuple[str, str], ...], pd.DataFrame] = {}

    def check(self, frame: pd.DataFrame) -> ColumnarResult | None:
        """Split ``frame`` into accepted rows (Arrow) and quarantined rows (as read); None when this
        chunk needs :meth:`ChunkChecker.check` (or a missing column makes it raise there)."""
        contract = self.checker.contract
        if not self.enabled or schema_changes(frame, contract).missing:
            return None
        frame = frame.reset_index(drop=True)
        if not all(_readable(frame[spec.name], spec) for spec in contract.columns):
            return None
        marks = _Marks(len(frame))
        typed = {spec.name: self._column(frame[spec.name], spec, marks) for spec in contract.columns}
        self._duplicates(typed, marks)
        accepted = pa.table([typed[name] for name in self.schema.names], names=self.schema.names)
        bad = ~marks.open_
        if bad.any():
            accepted = accepted.filter(pa.array(marks.open_))
        result = ColumnarResult(
            accepted=accepted.cast(self.schema),
            quarantined=self._quarantine(frame, bad, marks),
            counts={str(k): int(v) for k, v in pd.Series(marks.rule[bad]).value_counts().items()},
        )
        self.checker.offset += len(frame)
        return result

    def _quarantine(self, frame: pd.DataFrame, bad: np.ndarray, marks: _Marks) -> pd.DataFrame:
        """The quarantined rows as read; a clean chunk's (empty) frame is made once per set of dtypes."""
        if bad.any():
            return _quarantine(
                frame.iloc[np.flatnonzero(bad)], marks.rule[bad], marks.column[bad], self.checker.offset
            )
        shape = tuple((str(name), str(dtype)) for name, dtype in frame.dtypes.items())
        if shape not in self._empty:
            self._empty[shape] = _quarantine(frame.iloc[:0], marks.rule[:0], marks.column[:0], 0)
        return self._empty[shape]

    def _duplicates(self, typed: dict[str, pa.Array], marks: _Marks) -> None:
        if not self.checker.ids:
            return
        ids = pd.DataFrame({name: typed[name].to_pandas() for name in self.checker.ids})
        keys = self.checker.duplicate_keys(ids)
        for rule, col, failed in self.checker.find_duplicates(marks.open_, keys):
            marks.mark(rule, col, failed)

    def _column(self, series: pd.Series, spec: ColumnSpec, marks: _Marks) -> pa.Array:
        if spec.dtype in _NUMBERS:
            return self._number(series, spec, marks)
        raw = pa.Array.from_pandas(series)
        if self.checker.cleaning.trim and _arrow_text(series):
            raw = _trim(raw)
        failed = None
        value = raw
        if spec.dtype == "datetime":
            value, failed = _times(raw, series)
        self._count(spec, len(raw) - raw.null_count, failed)
        if failed is not None:
            marks.mark("type", spec.name, failed)
        if not spec.nullable and raw.null_count:
            marks.mark("not_null", spec.name, raw.is_null())
        if spec.categories is not None and self.checker.cleaning.unknown_category == "quarantine":
            known = pc.is_in(value, value_set=pa.array(spec.categories, value.type))
            unknown = pc.invert(known)
            marks.mark(
                "category", spec.name, pc.and_(unknown, value.is_valid()) if value.null_count else unknown
            )
        return value

    def _number(self, series: pd.Series, spec: ColumnSpec, marks: _Marks) -> pa.Array:
        """The checker's own conversion (numpy, vectorised already), then the range in numpy."""
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":  # none missing, all whole
            value = series.to_numpy(dtype="float64")
            was_null = failed = np.zeros(len(value), dtype=bool)
        else:
            was_null = series.isna().to_numpy()
            value = coerce_column(series, spec).to_numpy(dtype="float64")
            failed = np.isnan(value) & ~was_null
        self._count(spec, len(value) - int(was_null.sum()), failed)
        marks.mark("type", spec.name, failed)
        if not spec.nullable:
            marks.mark("not_null", spec.name, was_null)
        if spec.min is not None or spec.max is not None:
            low = value < spec.min if spec.min is not None else np.zeros(len(value), dtype=bool)
            high = value > spec.max if spec.max is not None else np.zeros(len(value), dtype=bool)
            marks.mark("range", spec.name, low | high)
        return pa.array(value, from_pandas=True)

    def _count(self, spec: ColumnSpec, values: int, failed: pa.Array | np.ndarray | None) -> None:
        """What :meth:`ChunkChecker.type_changes` reads: values present, values that did not convert."""
        stats = self.checker.stats[spec.name]
        stats[0] += values
        if isinstance(failed, np.ndarray):
            stats[1] += int(failed.sum())
        elif failed is not None:
            stats[1] += int(pc.sum(failed).as_py() or 0)


def _trim(raw: pa.Array) -> pa.Array:
    """What :func:`loopml.validate.cleaning.trim` does to text: stripped, empty text missing."""
    stripped = pc.utf8_trim_whitespace(raw)
    empty = pc.equal(stripped, "")
    if not pc.any(empty).as_py():
        return stripped
    return pc.if_else(empty, pa.scalar(None, raw.type), stripped)


def _times(raw: pa.Array, series: pd.Series) -> tuple[pa.Array, pa.Array]:
    """Naive ISO 8601 text parsed by Arrow, anything else by the checker's own rules; the years
    outside 1678..2261 missing, like the checker's."""
    try:
        times = pc.cast(raw, pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        text = pd.Series(raw.to_pandas(), index=series.index, dtype=series.dtype)
        parsed = coerce_column(text, ColumnSpec(name=str(series.name), dtype="datetime"))
        times = pa.array(parsed, type=pa.timestamp("ns"), from_pandas=True)
    low, high = pa.scalar(_MIN_TIME, pa.timestamp("ns")), pa.scalar(_MAX_TIME, pa.timestamp("ns"))
    span = pc.min_max(times)
    if span["min"].is_valid and (span["min"].value < low.value or span["max"].value > high.value):
        outside = pc.fill_null(pc.or_(pc.less(times, low), pc.greater(times, high)), False)
        times = pc.if_else(outside, pa.scalar(None, pa.timestamp("ns")), times)
    return times, pc.and_(times.is_null(), raw.is_valid())
