"""Enforcing a data contract: clean, coerce types, split rows into accepted and quarantined.

Every row read ends in exactly one of the two frames: ``accepted + quarantined == rows read``.
A quarantined row keeps its original values plus the rule, column and offending value that sent it
there: the first rule it failed, in the order: the ``cleaning.filters`` (by their own names), then
per column type, not_null, range, category, pattern, then duplicate_id and duplicate_row.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.config import CleaningConfig, FillPolicy
from loopml.errors import ConfigError, ContractError
from loopml.validate.cleaning import as_text, filter_mask, trim
from loopml.validate.contract import ColumnSpec, DataContract
from loopml.validate.seen import Seen, row_hashes

__all__ = [
    "CheckResult", "CheckedRows", "ChunkChecker", "SchemaChange",
    "coerce_column", "enforce", "schema_changes",
]  # fmt: skip

RULES = ("type", "not_null", "range", "category", "pattern", "duplicate_id", "duplicate_row")
_MIN_TIME, _MAX_TIME = pd.Timestamp("1678-01-01"), pd.Timestamp("2261-12-31")


@dataclass(frozen=True)
class SchemaChange:
    """Columns that appeared, disappeared or changed type against the contract."""

    added: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    type_changed: tuple[tuple[str, str, str], ...] = ()  # (column, contract dtype, dtype the data has)

    @property
    def breaking(self) -> bool:
        return bool(self.missing or self.type_changed)

    def describe(self) -> str:
        """One line for people: what changed."""
        parts = [f"missing column(s) {', '.join(self.missing)}"] if self.missing else []
        parts += [f"column {c} changed type {a} -> {b}" for c, a, b in self.type_changed]
        parts += [f"new column(s) {', '.join(self.added)}"] if self.added else []
        return "; ".join(parts) or "no schema change"

    def to_dict(self) -> dict[str, list[object]]:
        return {
            "added": list(self.added),
            "missing": list(self.missing),
            "type_changed": [{"column": c, "expected": a, "got": b} for c, a, b in self.type_changed],
        }


@dataclass
class CheckResult:
    """The outcome of enforcing a contract on one frame."""

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    schema: SchemaChange
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return len(self.accepted) + len(self.quarantined)


def schema_changes(frame: pd.DataFrame, contract: DataContract) -> SchemaChange:
    """Compare a frame's columns with the contract's."""
    have, want = list(map(str, frame.columns)), contract.names
    return SchemaChange(
        added=tuple(c for c in have if c not in want), missing=tuple(c for c in want if c not in have)
    )


def _to_datetime(series: pd.Series) -> pd.Series:
    """Naive UTC times: ISO 8601 first, then any other format; times with an offset are converted to
    UTC, naive ones are taken as they are; unparseable values (and years outside 1678..2261) become NaT."""
    if pd.api.types.is_datetime64_any_dtype(series):
        tz = getattr(series.dt, "tz", None)
        times = series.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else series
    elif (fast := _naive_iso_times(series)) is not None:
        times = fast
    else:
        text = as_text(series)
        times = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
        retry = times.isna() & series.notna()
        if retry.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                other = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=True)
            times = times.where(~retry, other.reindex(times.index))
        times = times.dt.tz_localize(None)
    return times.where((times >= _MIN_TIME) & (times <= _MAX_TIME))


def _naive_iso_times(series: pd.Series) -> pd.Series | None:
    """Arrow's parser for text that is all naive ISO 8601 times (10x pandas'); None for anything else."""
    if not isinstance(series.dtype, pd.StringDtype):
        return None
    try:
        parsed = pc.cast(pa.Array.from_pandas(series), pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=series.index, name=series.name)


def coerce_column(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Convert a column to its contract type; values that cannot convert become missing."""
    if spec.dtype == "datetime":
        return _to_datetime(series)
    if spec.dtype in ("int", "float"):
        if pd.api.types.is_bool_dtype(series):
            series = series.astype("int64")
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
        values[~np.isfinite(values)] = np.nan
        if spec.dtype == "int":
            values[np.mod(values, 1) != 0] = np.nan  # 1.5 is not an int
        return pd.Series(values, index=series.index, name=series.name)
    if spec.dtype == "bool":
        mapping = {True: True, False: False, "true": True, "false": False}  # 1 and 0 equal True, False
        lowered = series.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
        return lowered.map(lambda v: mapping.get(v) if isinstance(v, bool | str | int) else None).astype(
            "boolean"
        )
    return as_text(series)


def _fill(value: pd.Series, policy: FillPolicy, spec: ColumnSpec) -> pd.Series:
    filler = coerce_column(pd.Series([policy.fill]), spec)
    if filler.isna().all():
        raise ConfigError(
            f"loopml.yaml: 'cleaning.missing.{spec.name}.fill' {policy.fill!r} is not a {spec.dtype}."
        )
    return value.where(value.notna(), filler.iloc[0])


def _pattern(value: pd.Series, pattern: str) -> pd.Series:
    text = as_text(value)
    return value.notna() & ~text.str.fullmatch(re.compile(pattern)).fillna(False).astype(bool)


def _failures(
    was_null: pd.Series, value: pd.Series, spec: ColumnSpec, cleaning: CleaningConfig
) -> tuple[list[tuple[str, pd.Series]], pd.Series]:
    checks = [("type", value.isna() & ~was_null)]
    if not spec.nullable:
        checks.append(("not_null", was_null))
    if spec.dtype in ("int", "float") and (spec.min is not None or spec.max is not None):
        if cleaning.out_of_range == "clip":
            value = value.clip(spec.min, spec.max)
        else:
            low = value < spec.min if spec.min is not None else False
            high = value > spec.max if spec.max is not None else False
            checks.append(("range", pd.Series(low | high, index=value.index)))
    if spec.categories is not None and cleaning.unknown_category == "quarantine":
        checks.append(("category", value.notna() & ~value.isin(spec.categories)))
    if spec.pattern is not None:
        checks.append(("pattern", _pattern(value, spec.pattern)))
    return checks, value


class ChunkChecker:
    """Cleans and checks chunk after chunk of one ingest, remembering ids and rows across chunks.

    ``seed`` gives ids and rows already in the data set (a parent snapshot being appended to), so a
    repeat of one of them is a duplicate too. ``stats`` counts per column the non-missing values and
    those that would not convert to the contract type, to tell a type change from a few bad values.
    """

    def __init__(self, contract: DataContract, cleaning: CleaningConfig | None = None) -> None:
        self.contract = contract
        self.cleaning = cleaning or CleaningConfig()
        self.ids = {spec.name: Seen() for spec in contract.columns if spec.unique}
        self.rows = Seen()
        self.stats: dict[str, list[int]] = {spec.name: [0, 0] for spec in contract.columns}
        self.offset = 0

    def seed(self, accepted: pd.DataFrame) -> None:
        """Remember rows already accepted into the data set."""
        for name, seen in self.ids.items():
            if name in accepted.columns:
                seen.add(row_hashes(accepted[[name]].dropna(), [name]))
        if self.cleaning.dedupe == "row":
            self.rows.add(row_hashes(accepted, self.contract.names))

    def type_changes(self) -> tuple[tuple[str, str, str], ...]:
        """Columns whose every non-missing value so far failed to convert."""
        return tuple(
            (name, self.contract.column(name).dtype, "string")
            for name, (values, failed) in self.stats.items()
            if values and failed == values
        )

    def check(self, frame: pd.DataFrame) -> CheckResult:
        """Split ``frame`` into accepted (typed, per contract) and quarantined (original values) rows."""
        rows = self.check_rows(frame)
        rows.mark_all(self.find_duplicates(rows.open_, self.duplicate_keys(rows.coerced)))
        return self.result(rows)

    def check_rows(self, frame: pd.DataFrame) -> CheckedRows:
        """The checks of each row on its own (filters, types, nulls, ranges, ...), not duplicates yet.

        The only state touched is :attr:`stats`, so chunks may be checked on several machines; the
        duplicates across chunks are then found in order by :meth:`find_duplicates` (Dask ingest).
        """
        change = schema_changes(frame, self.contract)
        if change.missing:
            raise ContractError(
                f"data breaks contract '{self.contract.name}' v{self.contract.version}: {change.describe()}.",
                hint="Fix the source, or run `loopml data accept-schema` (or edit the contract file).",
            )
        frame = frame.reset_index(drop=True)
        raw = trim(frame) if self.cleaning.trim else frame
        rows = CheckedRows(frame, pd.DataFrame(index=frame.index), change)
        for item in self.cleaning.filters:
            rows.mark(item.rule, item.column, filter_mask(raw, item))
        for spec in self.contract.columns:
            rows.coerced[spec.name] = self._column(raw[spec.name], spec, rows.mark)
        return rows

    def result(self, rows: CheckedRows) -> CheckResult:
        """The accepted and quarantined frames of checked rows (numbered after the rows before them)."""
        bad = ~rows.open_
        counts = pd.Series(rows.rule[bad]).value_counts()
        result = CheckResult(
            accepted=_finalise(rows.coerced.loc[~bad], self.contract),
            quarantined=_quarantine(rows.frame.loc[bad], rows.rule[bad], rows.column[bad], self.offset),
            schema=rows.change,
            counts={str(k): int(v) for k, v in counts.items()},
        )
        self.offset += len(rows.frame)
        return result

    def _column(self, raw: pd.Series, spec: ColumnSpec, mark: Callable[..., None]) -> pd.Series:
        value = coerce_column(raw, spec)
        was_null = raw.isna()
        stats = self.stats[spec.name]
        stats[0] += int((~was_null).sum())
        stats[1] += int((value.isna() & ~was_null).sum())
        policy = self.cleaning.missing.get(spec.name)
        if isinstance(policy, FillPolicy):
            value = _fill(value, policy, spec)
            was_null = was_null & value.isna()
        checks, value = _failures(was_null, value, spec, self.cleaning)
        for name, failed in checks:
            mark(name, spec.name, failed.to_numpy(dtype=bool))
        return value

    def duplicate_keys(self, coerced: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per unique column (and ``*`` for whole rows with ``cleaning.dedupe: row``): every row's
        64-bit key and whether it has one. Small (8 bytes a row), so it travels from Dask workers."""
        keys = {
            name: (row_hashes(coerced[[name]], [name]), coerced[name].notna().to_numpy()) for name in self.ids
        }
        if self.cleaning.dedupe == "row":
            keys["*"] = (row_hashes(coerced, self.contract.names), np.ones(len(coerced), dtype=bool))
        return keys

    def find_duplicates(
        self, open_: np.ndarray, keys: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> list[tuple[str, str, np.ndarray]]:
        """The duplicates among the rows still open, against every row seen before (in call order):
        ``(rule, column, which rows)`` for :meth:`CheckedRows.mark_all`."""
        open_ = open_.copy()
        marks = []
        for name, seen in self.ids.items():
            hashes, present = keys[name]
            good = open_ & present
            dup = np.zeros(len(open_), dtype=bool)
            dup[good] = seen.duplicates(hashes[good])
            marks.append(("duplicate_id", name, dup))
            open_ &= ~dup
        if "*" in keys:
            dup = np.zeros(len(open_), dtype=bool)
            dup[open_] = self.rows.duplicates(keys["*"][0][open_])
            marks.append(("duplicate_row", "*", dup))
        return marks


@dataclass
class CheckedRows:
    """One chunk part-way through :class:`ChunkChecker`: the first rule each row failed so far."""

    frame: pd.DataFrame  # the rows as read (index 0..n-1)
    coerced: pd.DataFrame  # typed per contract
    change: SchemaChange
    rule: np.ndarray = field(init=False)
    column: np.ndarray = field(init=False)
    open_: np.ndarray = field(init=False)  # rows that failed no rule yet

    def __post_init__(self) -> None:
        self.rule = np.full(len(self.frame), None, dtype=object)
        self.column = self.rule.copy()
        self.open_ = np.ones(len(self.frame), dtype=bool)

    def mark(self, name: str, col: str, failed: np.ndarray) -> None:
        """Rows of ``failed`` still open fail rule ``name`` on column ``col``."""
        new = failed & self.open_
        if new.any():
            self.rule[new], self.column[new], self.open_[new] = name, col, False

    def mark_all(self, marks: list[tuple[str, str, np.ndarray]]) -> None:
        for name, col, failed in marks:
            self.mark(name, col, failed)


def enforce(
    frame: pd.DataFrame, contract: DataContract, cleaning: CleaningConfig | None = None
) -> CheckResult:
    """Apply the contract (and cleaning) to one whole ``frame``; a missing column is breaking and raises."""
    return ChunkChecker(contract, cleaning).check(frame)


def _finalise(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    out = frame.reset_index(drop=True)
    for spec in contract.columns:
        if spec.dtype == "int" and not spec.nullable:
            out[spec.name] = out[spec.name].astype("int64")
        elif spec.dtype == "bool" and not spec.nullable:
            out[spec.name] = out[spec.name].astype(bool)
    return out


def _quarantine(rows: pd.DataFrame, rule: np.ndarray, column: np.ndarray, offset: int) -> pd.DataFrame:
    out = rows.astype("string").reset_index(names="_row")
    out["_row"] = out["_row"].astype("int64") + offset
    out["_rule"] = pd.array(rule, dtype="string")
    out["_column"] = pd.array(column, dtype="string")
    values = pd.Series("", index=rows.index, dtype="string")
    for name in pd.unique(column):
        if name in rows.columns:
            hit = column == name
            values[hit] = as_text(rows.loc[hit, name]).astype("string").fillna("<NA>")
    out["_value"] = values.to_numpy()
    return out
