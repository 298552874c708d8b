"""The data contract enforced on the records of a prediction request (the REST and v2 APIs).

Types are strict, as JSON has them: a number column takes JSON numbers (never text, never a boolean;
an integer column takes whole numbers only, ``3.0`` as ``3``), a text column takes text, a boolean
column ``true`` or ``false``, a datetime column ISO 8601 text (``2026-01-20T14:30:00``, with or
without a UTC offset; a time with an offset is read as naive UTC, as every stored time is); an epoch
number is not a time. ``null`` only where the contract says the column is nullable; NaN and Infinity
never. Then the contract's ``min``/``max``, ``categories`` (or scored as missing, see
:class:`~loopml.validate.ScoringPolicy`) and ``pattern``.

The fields a record may carry are the contract's columns: the model's inputs (required, unless
nullable), the id column (optional, checked like any column, and echoed in the response), and the
contract's other columns (the target, dropped columns: accepted and not used). Any other field is an
``extra_field``, refused unless ``serve.extra_fields: ignore``. The event time, when it is sent but is
no input of the model, is checked as a column too and logged (monitoring windows by it); wherever it
is, it must lie in the plausible range of :class:`~loopml.validate.ScoringPolicy` (rule ``range``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopml.errors import closest
from loopml.validate.contract import ColumnSpec, DataContract
from loopml.validate.policy import ScoringPolicy, UnknownCategory, Violation, shown

__all__ = ["CheckedRecords", "RecordChecker"]

_ABSENT = object()
_INT64 = 2**63
_MIN_YEAR, _MAX_YEAR = 1678, 2261  # the times a timestamp can hold (as ingest's, see checks.py)
_EXAMPLE_TIME = "'2026-01-20T14:30:00'"
_CATEGORIES_SHOWN = 12

# A column's check: a JSON value -> (the value the model scores, the value the prediction log keeps).
Check = Callable[[Any], tuple[Any, Any]]


class _Broken(Exception):
    """A value breaks ``rule``: ``error`` says what, naming the value; ``hint`` how to fix it."""

    def __init__(self, rule: str, error: str, hint: str = "") -> None:
        super().__init__(error)
        self.rule, self.error, self.hint = rule, error, hint


class _AsMissing(Exception):
    """A value outside the categories, to be scored as missing (``on_unknown_category: missing``)."""


@dataclass(frozen=True)
class CheckedRecords:
    """Records that keep the contract: per record, the values to score (``rows``: every input and the
    id column, None where absent), the values to log (``logged``: JSON), and the values scored as
    missing because they are no known category (``as_missing``: column -> value, or None)."""

    rows: list[dict[str, Any]]
    logged: list[dict[str, Any]]
    as_missing: list[dict[str, Any] | None]


def _now() -> datetime:
    """The server clock as naive UTC, as every stored time is."""
    return datetime.now(UTC).replace(tzinfo=None)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _wrong_type(value: Any, expected: str, hint: str) -> _Broken:
    return _Broken("type", f"{shown(value)} is {_kind(value)}, not {expected}", hint)


_NUMBER_HINT = "send a JSON number, without quotes"


def _finite(value: float, nullable: bool) -> None:
    if not math.isfinite(value):
        hint = "send null for a missing value" if nullable else "send a finite number"
        raise _Broken("type", f"{shown(value)} is not a finite number", hint)


def _float(nullable: bool) -> Check:
    def convert(value: Any) -> tuple[Any, Any]:
        if isinstance(value, float):
            _finite(value, nullable)
            return value, value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise _Broken("type", f"{shown(value)} is too large for a number", _NUMBER_HINT) from None
            return number, number
        raise _wrong_type(value, "a number", _NUMBER_HINT)

    return convert


def _int(nullable: bool) -> Check:
    def convert(value: Any) -> tuple[Any, Any]:
        if isinstance(value, int) and not isinstance(value, bool):
            if -_INT64 <= value < _INT64:
                return value, value
            raise _Broken("type", f"{shown(value)} is outside the 64-bit integer range", _NUMBER_HINT)
        if isinstance(value, float):
            _finite(value, nullable)
            if value.is_integer() and abs(value) < _INT64:
                return int(value), int(value)
            raise _Broken("type", f"{shown(value)} is not a whole number", "send an integer")
        raise _wrong_type(value, "an integer", "send a whole JSON number, without quotes")

    return convert


def _bool(value: Any) -> tuple[Any, Any]:
    if isinstance(value, bool):
        return value, value
    raise _wrong_type(value, "a boolean", "send true or false")


def _string(value: Any) -> tuple[Any, Any]:
    if isinstance(value, str):
        return value, value
    raise _wrong_type(value, "text", "send a JSON string, in quotes")


def _datetime(value: Any) -> tuple[Any, Any]:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Broken(
                "type", f"{shown(value)} is not an ISO 8601 date-time", f"send text such as {_EXAMPLE_TIME}"
            ) from None
        logged: Any = value
    elif isinstance(value, datetime):
        parsed, logged = value, value.isoformat()
    else:
        hint = f"send ISO 8601 text such as {_EXAMPLE_TIME}; a number is not read as a time"
        raise _wrong_type(value, "a date-time", hint)
    if _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        if parsed.tzinfo is None:
            return parsed, logged
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)  # naive UTC, as every stored time
        if _MIN_YEAR <= parsed.year <= _MAX_YEAR:
            return parsed, logged
    error = f"{shown(value)} is outside the years {_MIN_YEAR} to {_MAX_YEAR} that a time can hold"
    raise _Broken("type", error)


def _converter(spec: ColumnSpec) -> Check:
    if spec.dtype == "float":
        return _float(spec.nullable)
    if spec.dtype == "int":
        return _int(spec.nullable)
    return {"bool": _bool, "string": _string, "datetime": _datetime}[spec.dtype]


def _number_text(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e15 else str(value)


def _range(spec: ColumnSpec) -> Callable[[Any, Any], None] | None:
    low, high = spec.min, spec.max
    if spec.dtype not in ("int", "float") or (low is None and high is None):
        return None

    def check(number: Any, sent: Any) -> None:
        if low is not None and number < low:
            raise _Broken("range", f"{shown(sent)} is below the minimum {_number_text(low)}")
        if high is not None and number > high:
            raise _Broken("range", f"{shown(sent)} is above the maximum {_number_text(high)}")

    return check


def _listed(categories: list[str]) -> str:
    head = ", ".join(categories[:_CATEGORIES_SHOWN])
    more = len(categories) - _CATEGORIES_SHOWN
    return f"{head}, ... ({len(categories)} in all)" if more > 0 else head


def column_check(spec: ColumnSpec, unknown: UnknownCategory) -> Check:
    """The check of one column's value: its type, not-null, range, categories and pattern, in that
    order; raises ``_Broken`` on the first rule it breaks (``_AsMissing`` for an unknown category to
    score as missing)."""
    convert, limits, nullable = _converter(spec), _range(spec), spec.nullable
    categories = frozenset(spec.categories) if spec.categories is not None else None
    listed = _listed(spec.categories or [])
    pattern = re.compile(spec.pattern) if spec.pattern is not None else None
    as_missing = unknown == "missing"

    def check(value: Any) -> tuple[Any, Any]:
        if value is None:
            if nullable:
                return None, None
            raise _Broken("not_null", "null is not allowed: the contract says this column is never missing")
        model, logged = convert(value)
        if limits is not None:
            limits(model, value)
        if categories is not None and model not in categories:
            if as_missing:
                raise _AsMissing
            hint = "set on_unknown_category: missing to score it as missing"
            raise _Broken("category", f"{shown(value)} is not one of the categories {listed}", hint)
        if pattern is not None and not pattern.fullmatch(str(model)):
            raise _Broken("pattern", f"{shown(value)} does not match the pattern {spec.pattern}")
        return model, logged

    return check


class RecordChecker:
    """Checks request records against a model's contract (see the module's docstring).

    Examples
    --------
    >>> from loopml.validate import ColumnSpec, DataContract
    >>> contract = DataContract(name="t", columns=[
    ...     ColumnSpec(name="Type", dtype="string", categories=["H", "L", "M"]),
    ...     ColumnSpec(name="x", dtype="float", min=0)])
    >>> checker = RecordChecker(contract, ["Type", "x"])
    >>> checker.check([{"Type": "L", "x": 2}])[0].rows
    [{'Type': 'L', 'x': 2.0}]
    >>> for v in checker.check([{"Type": "Q", "x": "2"}])[1]:
    ...     print(v.rule, "|", v.message(v.column))
    category | field 'Type': 'Q' is not one of the categories H, L, M (contract rule: category); ...
    type | field 'x': '2' is text, not a number (contract rule: type); send a JSON number, without quotes
    """

    def __init__(
        self, contract: DataContract, columns: Sequence[str], policy: ScoringPolicy | None = None
    ) -> None:
        self.policy = policy = policy or ScoringPolicy()
        id_column, self.event_time = contract.id_column, contract.event_time
        names = [*columns, *([id_column] if id_column and id_column not in columns else [])]
        self.contract_name = contract.name
        self.checks: list[tuple[str, Check, bool]] = []  # (column, its check, whether it must be sent)
        for name in names:
            spec = contract.column(name)
            unknown = spec.on_unknown_category or policy.on_unknown_category
            self.checks.append((name, column_check(spec, unknown), name in columns and not spec.nullable))
        # The event time, when it is no input: checked and logged when sent (monitoring windows by it).
        self.time_check: Check | None = None
        if self.event_time and self.event_time not in names and self.event_time in contract.names:
            self.time_check = column_check(contract.column(self.event_time), policy.on_unknown_category)
        self.known = frozenset([*contract.names, *names])
        self.reject_extra = policy.extra_fields == "reject"

    def check(self, records: Sequence[Any]) -> tuple[CheckedRecords, list[Violation]]:
        """The records' values to score and to log, and every value that breaks the contract: score
        the records only when that list is empty."""
        found: list[Violation] = []
        out = CheckedRecords([], [], [])
        now = _now()
        for i, record in enumerate(records):
            row, logged, missing = self._record(i, record, found)
            if self.event_time is not None and isinstance(record, dict):
                self._event_time(i, record, row, logged, now, found)
            out.rows.append(row)
            out.logged.append(logged)
            out.as_missing.append(missing)
        return out, found

    def _record(
        self, i: int, record: Any, found: list[Violation]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        row: dict[str, Any] = {}
        logged: dict[str, Any] = {}
        missing: dict[str, Any] | None = None
        if not isinstance(record, dict):
            error = f"{shown(record)} is {_kind(record)}, not a JSON object of column values"
            found.append(Violation(i, "", record, "type", error))
            return row, logged, missing
        if self.reject_extra and not record.keys() <= self.known:
            found.extend(self._extra(i, key, value) for key, value in record.items() if key not in self.known)
        for name, check, must in self.checks:
            value = record.get(name, _ABSENT)
            if value is _ABSENT:  # an input that is not nullable must be sent; the id need not be
                if must:
                    found.append(Violation(i, name, None, "required", "not sent; the model needs this input"))
                row[name] = logged[name] = None
                continue
            try:
                row[name], logged[name] = check(value)
            except _AsMissing:
                row[name] = logged[name] = None
                missing = {**(missing or {}), name: value}
            except _Broken as exc:
                found.append(Violation(i, name, value, exc.rule, exc.error, exc.hint))
        return row, logged, missing

    def _event_time(
        self,
        i: int,
        record: dict[str, Any],
        row: dict[str, Any],
        logged: dict[str, Any],
        now: datetime,
        found: list[Violation],
    ) -> None:
        """The event time's plausible range (see :class:`ScoringPolicy`); the event time checked and
        kept (to log) when it is sent but is no input of the model."""
        name = self.event_time
        assert name is not None
        if self.time_check is not None and record.get(name) is not None:
            try:
                row[name], logged[name] = self.time_check(record[name])
            except _Broken as exc:
                found.append(Violation(i, name, record[name], exc.rule, exc.error, exc.hint))
                return
        value = row.get(name)
        problem = self.policy.event_time_problem(value, now) if isinstance(value, datetime) else None
        if problem is not None:
            error, hint = problem
            found.append(Violation(i, name, record[name], "range", f"{shown(record[name])} {error}", hint))

    def _extra(self, i: int, key: str, value: Any) -> Violation:
        near = closest(key, self.known)
        error = f"{shown(value)} was sent in a field that is no column of contract '{self.contract_name}'"
        error += f"; did you mean '{near}'?" if near else ""
        hint = "send only the contract's columns, or set serve.extra_fields: ignore"
        return Violation(i, key, value, "extra_field", error, hint)
