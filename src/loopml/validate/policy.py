"""What scoring does with data that breaks the contract: the policy, and each broken rule as a value.

The APIs refuse a request that breaks the model's data contract (a 4xx whose message names the field,
the value and the rule); batch scoring puts such a row in quarantine. Two choices are the project's
(and, for categories, each column's): :class:`ScoringPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from loopml._durations import duration
from loopml.config import Settings
from loopml.errors import InputError

__all__ = [
    "SCORING_RULES",
    "ScoringPolicy",
    "Violation",
    "longest_window",
    "shown",
    "violations_error",
]

UnknownCategory = Literal["reject", "missing"]
ExtraFields = Literal["reject", "ignore"]

# The rules scoring enforces, in the order a value is checked (ingest's names where they overlap).
SCORING_RULES = ("extra_field", "required", "type", "not_null", "range", "category", "pattern")
_MAX_DETAILS = 100  # a request of 1,000 bad records answers with the first ones, and says how many
_MAX_SHOWN = 60  # characters of a value quoted in a message


@dataclass(frozen=True)
class ScoringPolicy:
    """``on_unknown_category``: a value outside a column's categories is refused (``reject``) or scored
    as missing (``missing``), unless the column's contract says otherwise. ``extra_fields``: a request
    field that is no column of the contract is refused (``reject``) or ignored (``ignore``).

    The event time's plausible range: at most ``event_time_ahead`` after the clock when the record is
    checked, and at least ``trained_from - event_time_before`` (the version's first training event,
    see :meth:`for_version`); None: no limit on that side."""

    on_unknown_category: UnknownCategory = "reject"
    extra_fields: ExtraFields = "reject"
    event_time_ahead: timedelta | None = timedelta(days=1)
    event_time_before: timedelta | None = None
    trained_from: datetime | None = None

    @classmethod
    def of(cls, settings: Settings) -> ScoringPolicy:
        """The project's: ``contract.on_unknown_category``, ``serve.extra_fields`` and the event time's
        range (``contract.event_time_ahead``, ``contract.event_time_before``)."""
        contract = settings.contract
        ahead = duration(contract.event_time_ahead) if contract.event_time_ahead else None
        before = contract.event_time_before
        back = longest_window(settings) if before == "auto" else duration(before) if before else None
        return cls(
            contract.on_unknown_category,
            settings.serve.extra_fields,
            event_time_ahead=ahead,
            event_time_before=back,
        )

    def for_version(self, trained_from: datetime | None) -> ScoringPolicy:
        """This policy for a version whose training data starts at ``trained_from`` (naive UTC)."""
        return replace(self, trained_from=trained_from)

    def event_time_range(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The earliest and latest event time accepted at ``now`` (naive UTC); None: no limit."""
        low = None
        if self.trained_from is not None and self.event_time_before is not None:
            low = self.trained_from - self.event_time_before
        high = now + self.event_time_ahead if self.event_time_ahead is not None else None
        return low, high

    def event_time_problem(self, value: datetime, now: datetime) -> tuple[str, str] | None:
        """Why the event time ``value`` (naive UTC) is outside the range at ``now``, and how to fix
        it: ``(error, hint)``; None when it is inside."""
        low, high = self.event_time_range(now)
        if high is not None and value > high:
            assert self.event_time_ahead is not None
            return (
                f"is more than {_span(self.event_time_ahead)} ahead of the server clock "
                f"({now:%Y-%m-%dT%H:%M:%S} UTC)",
                "send the time the event happened; contract.event_time_ahead sets how far ahead it may be",
            )
        if low is not None and value < low:
            assert self.trained_from is not None and self.event_time_before is not None
            return (
                f"is before {low:%Y-%m-%dT%H:%M:%S}, the earliest this model accepts (its first training "
                f"event, {self.trained_from:%Y-%m-%dT%H:%M:%S}, less {_span(self.event_time_before)})",
                "send the time the event happened; contract.event_time_before sets how far back it may be",
            )
        return None


def longest_window(settings: Settings) -> timedelta:
    """The longest window the project looks back over: each window feature's longest window plus its
    label delay, and ``monitor.window``."""
    spans = [duration(settings.monitor.window)]
    for spec in settings.features.windows:
        delay = duration(spec.label_delay) if spec.label_delay else timedelta(0)
        spans += [duration(w) + delay for w in spec.windows]
    return max(spans)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Violation:
    """One value that breaks one rule: in record (or row) ``row``, column ``column``."""

    row: int
    column: str
    value: Any
    rule: str
    error: str  # what is wrong, naming the value: "'Q' is not one of the categories L, M, H"
    hint: str = ""  # how to fix it

    def message(self, field: str) -> str:
        """``field 'Type': 'Q' is not one of ... (contract rule: category); set ...``"""
        text = f"field '{field}': {self.error} (contract rule: {self.rule})"
        return f"{text}; {self.hint}" if self.hint else text

    def detail(self, field: str) -> dict[str, Any]:
        """The JSON object of ``error.details``: ``{field, value, rule, error}``."""
        value = jsonable(self.value)
        return {"field": field, "value": value, "rule": self.rule, "error": self.message(field)}


def shown(value: Any) -> str:
    """A value as a message quotes it: JSON's spelling, text in single quotes, long text cut.

    Examples
    --------
    >>> shown("Q"), shown(True), shown(None), shown(float("nan")), shown(42.0), shown([1, 2])
    ("'Q'", 'true', 'null', 'NaN', '42.0', '[1, 2]')
    """
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "..."
        return repr(text)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def jsonable(value: Any) -> Any:
    """A value for ``error.details``: JSON scalars as they are (long text cut), anything else as text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else shown(value)
    if isinstance(value, str):
        return value if len(value) <= 4 * _MAX_SHOWN else value[: 4 * _MAX_SHOWN] + "..."
    return shown(value)


def violations_error(violations: Sequence[Violation], field: Callable[[Violation], str]) -> InputError:
    """One 422 for a request's violations: the first in the message, the first 100 in ``details``,
    each field named by ``field(violation)`` (the routes name them their own way)."""
    first = violations[0]
    more = len(violations) - 1
    tail = f" ({more} more in error.details)" if more else ""
    if len(violations) > _MAX_DETAILS:
        tail = f" ({more} more; error.details lists the first {_MAX_DETAILS})"
    details = [v.detail(field(v)) for v in violations[:_MAX_DETAILS]]
    return InputError(first.message(field(first)) + tail + ".", details=details)
