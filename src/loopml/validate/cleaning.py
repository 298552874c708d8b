"""Cleaning steps that run before the contract: trimming, row filters, missing-value fills."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.config import FilterConfig
from loopml.errors import ConfigError, did_you_mean

__all__ = ["as_text", "filter_mask", "trim"]


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def _all_text(series: pd.Series) -> bool:
    if isinstance(series.dtype, pd.StringDtype):
        return True
    return pd.api.types.is_object_dtype(series) and pd.api.types.infer_dtype(series, skipna=True) in (
        "string",
        "empty",
    )


def as_text(series: pd.Series) -> pd.Series:
    """The values as text (missing stays missing), vectorised when they already are text."""
    if _all_text(series):
        return series
    return series.map(lambda v: str(v), na_action="ignore").astype(object)


def _already_trimmed(series: pd.Series) -> bool:
    """Arrow-backed text with no surrounding whitespace and no empty value: the common case, checked fast."""
    if not isinstance(series.dtype, pd.StringDtype):
        return False
    values = pa.Array.from_pandas(series)
    stripped = pc.utf8_trim_whitespace(values)
    return bool(values.equals(stripped)) and not pc.any(pc.equal(stripped, "")).as_py()


def trim(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip surrounding whitespace from text values; text that is only whitespace becomes missing."""
    out = frame.copy(deep=False)
    for col in out.columns:
        series = out[col]
        if not _is_text(series) or _already_trimmed(series):
            continue
        if _all_text(series):
            stripped = series.str.strip()
        else:
            stripped = series.map(lambda v: v.strip() if isinstance(v, str) else v, na_action="ignore")
        out[col] = stripped.where(stripped != "", None)
    return out


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(series: pd.Series, op: str, value: Any) -> pd.Series:
    if _numeric(value) or (isinstance(value, list) and value and all(_numeric(v) for v in value)):
        left: pd.Series = pd.to_numeric(series, errors="coerce")
    elif pd.api.types.is_datetime64_any_dtype(series) and isinstance(value, str):
        left, value = series, pd.Timestamp(value)
    else:
        left = as_text(series)
        value = [str(v) for v in value] if isinstance(value, list) else str(value)
    if op in ("in", "not_in"):
        found = left.isin(value if isinstance(value, list) else [value])
        return found if op == "in" else ~found & series.notna()
    ops = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}
    result = getattr(left, ops[op])(value)
    return result.fillna(False).astype(bool) & series.notna()


def _text_match(series: pd.Series, op: str, value: Any) -> pd.Series:
    text = as_text(series)
    if op == "startswith":
        hit = text.str.startswith(str(value))
    elif op == "endswith":
        hit = text.str.endswith(str(value))
    else:
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise ConfigError(
                f"loopml.yaml: filter value {value!r} is not a regular expression ({exc})."
            ) from None
        hit = text.str.contains(pattern, regex=True)
    hit = hit.fillna(False).astype(bool)
    return ~hit & series.notna() if op == "not_matches" else hit & series.notna()


def filter_mask(frame: pd.DataFrame, rule: FilterConfig) -> np.ndarray:
    """The rows of ``frame`` that ``rule`` sends to quarantine."""
    if rule.column not in frame.columns:
        names = [str(c) for c in frame.columns]
        raise ConfigError(
            f"loopml.yaml: filter '{rule.rule}' uses column '{rule.column}', which the source does not "
            f"have; {did_you_mean(rule.column, names)}"
        )
    series = frame[rule.column]
    if rule.op in ("is_null", "not_null"):
        mask = series.isna() if rule.op == "is_null" else series.notna()
    elif rule.op in ("startswith", "endswith", "matches", "not_matches"):
        mask = _text_match(series, rule.op, rule.value)
    else:
        mask = _compare(series, rule.op, rule.value)
    return np.asarray(mask.to_numpy(dtype=bool, na_value=False))
