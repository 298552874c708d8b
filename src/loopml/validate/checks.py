"""Enforcing a data contract: coerce types, split rows into accepted and quarantined.

Every row read ends in exactly one of the two frames: ``accepted + quarantined == rows read``.
A quarantined row keeps its original values plus the rule, column and offending value that sent it
there (the first rule it failed, in the order: type, not_null, range, category, duplicate_id).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loopml.errors import ContractError
from loopml.validate.contract import ColumnSpec, DataContract

__all__ = ["CheckResult", "SchemaChange", "coerce_column", "enforce", "schema_changes"]

RULES = ("type", "not_null", "range", "category", "duplicate_id")


@dataclass(frozen=True)
class SchemaChange:
    """Columns that appeared or disappeared against the contract."""

    added: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def breaking(self) -> bool:
        return bool(self.missing)


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
    UTC, naive ones are taken as they are; unparseable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(series):
        tz = getattr(series.dt, "tz", None)
        return series.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else series
    text = series.map(lambda v: v if v is None or isinstance(v, str) else str(v), na_action="ignore")
    times = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    retry = times.isna() & series.notna()
    if retry.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            other = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=True)
        times = times.where(~retry, other.reindex(times.index))
    return times.dt.tz_localize(None)


def coerce_column(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Convert a column to its contract type; values that cannot convert become missing."""
    if spec.dtype == "datetime":
        return _to_datetime(series)
    if spec.dtype in ("int", "float"):
        if pd.api.types.is_bool_dtype(series):
            series = series.astype("int64")
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
        values[~np.isfinite(values)] = np.nan
        return pd.Series(values, index=series.index, name=series.name)
    if spec.dtype == "bool":
        mapping = {True: True, False: False, "true": True, "false": False}
        lowered = series.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
        return lowered.map(mapping).astype("boolean")
    return series.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def _failures(raw: pd.Series, value: pd.Series, spec: ColumnSpec) -> list[tuple[str, pd.Series]]:
    was_null = raw.isna()
    checks = [("type", value.isna() & ~was_null)]
    if not spec.nullable:
        checks.append(("not_null", was_null))
    if spec.dtype in ("int", "float"):
        low = value < spec.min if spec.min is not None else pd.Series(False, index=value.index)
        high = value > spec.max if spec.max is not None else pd.Series(False, index=value.index)
        checks.append(("range", low | high))
    if spec.categories is not None:
        checks.append(("category", value.notna() & ~value.isin(spec.categories)))
    if spec.unique:
        checks.append(("duplicate_id", value.notna() & value.duplicated(keep="first")))
    return checks


def enforce(frame: pd.DataFrame, contract: DataContract) -> CheckResult:
    """Apply the contract to ``frame``; a missing column is a breaking change and raises."""
    change = schema_changes(frame, contract)
    if change.breaking:
        raise ContractError(
            f"data breaks contract '{contract.name}' v{contract.version}: missing column(s) "
            f"{', '.join(change.missing)}.",
            hint="Fix the source, or edit the contract file to accept the new schema.",
        )
    frame = frame.reset_index(drop=True)
    coerced = pd.DataFrame(index=frame.index)
    rule = pd.Series(pd.NA, index=frame.index, dtype="object")
    column = rule.copy()
    for spec in contract.columns:
        value = coerce_column(frame[spec.name], spec)
        coerced[spec.name] = value
        for name, failed in _failures(frame[spec.name], value, spec):
            new = failed.to_numpy(dtype=bool) & rule.isna().to_numpy()
            rule[new], column[new] = name, spec.name
    bad = rule.notna().to_numpy()
    return CheckResult(
        accepted=_finalise(coerced.loc[~bad], contract),
        quarantined=_quarantine(frame.loc[bad], rule[bad], column[bad]),
        schema=change,
        counts={r: int((rule == r).sum()) for r in RULES if (rule == r).any()},
    )


def _finalise(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    out = frame.reset_index(drop=True)
    for spec in contract.columns:
        if spec.dtype == "int" and not spec.nullable:
            out[spec.name] = out[spec.name].astype("int64")
        elif spec.dtype == "bool" and not spec.nullable:
            out[spec.name] = out[spec.name].astype(bool)
    return out


def _quarantine(rows: pd.DataFrame, rule: pd.Series, column: pd.Series) -> pd.DataFrame:
    out = rows.astype("string").reset_index(names="_row")
    out["_rule"] = rule.to_numpy()
    out["_column"] = column.to_numpy()
    out["_value"] = [str(rows.at[i, c]) for i, c in zip(rows.index, column, strict=True)]
    return out
