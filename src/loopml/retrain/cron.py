"""A small cron matcher (minute hour day-of-month month day-of-week, UTC) for retraining schedules."""

from __future__ import annotations

from datetime import datetime, timedelta

from loopml.errors import ConfigError

__all__ = ["cron_due", "parse_cron"]

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            start, end = (int(x) for x in body.split("-", 1))
        else:
            start = end = int(body)
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(part)
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> tuple[frozenset[int], ...]:
    """The allowed values of each of the five fields.

    Examples
    --------
    >>> sorted(parse_cron("*/15 3 * * 1-5")[0])
    [0, 15, 30, 45]
    """
    parts = expression.split()
    if len(parts) != 5:
        raise ConfigError(f"retrain.schedule '{expression}' needs 5 fields: minute hour day month weekday.")
    try:
        return tuple(_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True))
    except ValueError as exc:
        raise ConfigError(f"retrain.schedule '{expression}': field '{exc}' is not valid cron.") from None


def _matches(fields: tuple[frozenset[int], ...], t: datetime) -> bool:
    minute, hour, day, month, weekday = fields
    return (
        t.minute in minute
        and t.hour in hour
        and t.day in day
        and t.month in month
        and (t.weekday() + 1) % 7 in weekday
    )


def cron_due(expression: str, last: datetime | None, now: datetime) -> bool:
    """Whether a scheduled time falls in ``(last, now]`` (at most one day back when ``last`` is None)."""
    fields = parse_cron(expression)
    t = (last or now - timedelta(days=1)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    stop = min(now, t + timedelta(days=366))
    while t <= stop:
        if _matches(fields, t):
            return True
        t += timedelta(minutes=1)
    return False
