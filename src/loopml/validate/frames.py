"""The data contract enforced on the rows a batch job scores, column by column (vectorised).

The rules are ingest's, on the columns the model reads (its inputs, and the id column when the input
has it): a value that does not convert to the column's type, a missing value where the contract says
the column is never missing, a number outside ``min``/``max``, a value outside the ``categories``
(or, with ``on_unknown_category: missing``, scored as missing and counted), text that does not match
the ``pattern``, an event time outside the plausible range of :class:`~loopml.validate.ScoringPolicy`
(rule ``range``). A row that breaks one is not scored: it goes to quarantine with the first rule it
broke, the column and the value, as ingest's quarantine has them. Values are converted as
:func:`~loopml.validate.coerce_column` converts them (a file's text ``"42"`` is the number 42, as at
ingest); the strict JSON types of a request are :mod:`loopml.validate.requests`'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from loopml.validate.checks import _quarantine  # ingest's quarantine layout, shared on purpose
from loopml.validate.cleaning import as_text
from loopml.validate.contract import ColumnSpec, DataContract
from loopml.validate.policy import ScoringPolicy

__all__ = ["RowCheck", "check_rows"]


@dataclass
class RowCheck:
    """One chunk checked: the rows that keep the contract (``kept``, a mask; None when all do), their
    coerced values with unknown categories made missing where the policy says so (``coerced``), the
    others in ingest's quarantine layout (``quarantined``: the row as read, as text, with ``_row``,
    ``_rule``, ``_column`` and ``_value``), and counts by rule and of values scored as missing."""

    coerced: pd.DataFrame
    kept: np.ndarray | None
    quarantined: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    as_missing: dict[str, int] = field(default_factory=dict)


class _Marks:
    """The first rule each row broke (None: none so far)."""

    def __init__(self, rows: int) -> None:
        self.rule = np.full(rows, None, dtype=object)
        self.column = self.rule.copy()
        self.open = np.ones(rows, dtype=bool)
        self.any = False

    def mark(self, rule: str, column: str, failed: np.ndarray) -> None:
        new = failed & self.open
        if new.any():
            self.rule[new], self.column[new], self.open[new] = rule, column, False
            self.any = True


def _failures(raw: pd.Series, value: pd.Series, spec: ColumnSpec) -> list[tuple[str, np.ndarray]]:
    """Each rule's failing rows for one column (categories apart: see :func:`check_rows`)."""
    was_null = raw.isna().to_numpy()
    is_null = value.isna().to_numpy()
    checks = [("type", is_null & ~was_null)]
    if not spec.nullable:
        checks.append(("not_null", was_null))
    if spec.dtype in ("int", "float") and (spec.min is not None or spec.max is not None):
        numbers = value.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            low = numbers < spec.min if spec.min is not None else np.zeros(len(numbers), dtype=bool)
            high = numbers > spec.max if spec.max is not None else np.zeros(len(numbers), dtype=bool)
        checks.append(("range", low | high))
    if spec.pattern is not None:
        text = as_text(value)
        matched = text.str.fullmatch(re.compile(spec.pattern)).fillna(False).to_numpy(dtype=bool)
        checks.append(("pattern", ~is_null & ~matched))
    return checks


def _unknown(value: pd.Series, spec: ColumnSpec) -> np.ndarray | None:
    if spec.categories is None:
        return None
    unknown = (value.notna() & ~value.isin(spec.categories)).to_numpy(dtype=bool)
    return unknown if unknown.any() else None


def check_rows(
    raw: pd.DataFrame,
    coerced: pd.DataFrame,
    contract: DataContract,
    policy: ScoringPolicy | None = None,
    offset: int = 0,
) -> RowCheck:
    """Check ``coerced`` (the model's columns of ``raw``, converted by ``LoadedModel.coerce``; both
    indexed 0..n-1) against ``contract``; ``offset`` numbers the rows after those of earlier chunks.

    Examples
    --------
    >>> contract = DataContract(name="t", columns=[
    ...     ColumnSpec(name="x", dtype="float", min=0),
    ...     ColumnSpec(name="k", dtype="string", categories=["a"])])
    >>> raw = pd.DataFrame({"x": ["1", "-2", "z", None], "k": ["a", "a", "a", "b"]})
    >>> coerced = pd.DataFrame({"x": [1.0, -2.0, None, None], "k": ["a", "a", "a", "b"]})
    >>> found = check_rows(raw, coerced, contract)
    >>> found.kept.tolist(), found.counts
    ([True, False, False, False], {'range': 1, 'type': 1, 'not_null': 1})
    >>> found.quarantined[["_row", "_rule", "_column", "_value"]].values.tolist()
    [[1, 'range', 'x', '-2'], [2, 'type', 'x', 'z'], [3, 'not_null', 'x', '<NA>']]
    """
    policy = policy or ScoringPolicy()
    marks = _Marks(len(coerced))
    missing: dict[str, np.ndarray] = {}
    for name in coerced.columns:
        spec, value = contract.column(str(name)), coerced[name]
        for rule, failed in _failures(raw[name], value, spec):
            marks.mark(rule, str(name), failed)
        unknown = _unknown(value, spec)
        if unknown is not None:
            if (spec.on_unknown_category or policy.on_unknown_category) == "missing":
                missing[str(name)] = unknown
            else:
                marks.mark("category", str(name), unknown)
    if contract.event_time is not None and contract.event_time in coerced.columns:
        marks.mark("range", contract.event_time, _implausible(coerced[contract.event_time], policy))
    return _result(raw, coerced, marks, missing, offset)


def _implausible(times: pd.Series, policy: ScoringPolicy) -> np.ndarray:
    """Which event times lie outside the policy's plausible range now (see :class:`ScoringPolicy`)."""
    low, high = policy.event_time_range(datetime.now(UTC).replace(tzinfo=None))
    values = pd.to_datetime(times, errors="coerce")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    outside = np.zeros(len(values), dtype=bool)
    if high is not None:
        outside |= (values > pd.Timestamp(high)).to_numpy(dtype=bool)
    if low is not None:
        outside |= (values < pd.Timestamp(low)).to_numpy(dtype=bool)
    return outside


def _result(
    raw: pd.DataFrame, coerced: pd.DataFrame, marks: _Marks, missing: dict[str, np.ndarray], offset: int
) -> RowCheck:
    as_missing: dict[str, int] = {}
    if missing:
        coerced = coerced.copy()
        for name, unknown in missing.items():
            scored = unknown & marks.open
            if scored.any():
                coerced.loc[scored, name] = None
                as_missing[name] = int(scored.sum())
    if not marks.any:
        return RowCheck(coerced, None, raw.iloc[:0], as_missing=as_missing)
    kept, bad = marks.open, ~marks.open
    counts = pd.Series(marks.rule[bad]).value_counts()
    return RowCheck(
        coerced=coerced.loc[kept].reset_index(drop=True),
        kept=kept,
        quarantined=_quarantine(raw.loc[bad], marks.rule[bad], marks.column[bad], offset),
        counts={str(k): int(v) for k, v in counts.items()},
        as_missing=as_missing,
    )
