"""The retraining schedule: whether ``retrain.schedule`` named a time since the last check.

The cron expression is read by :mod:`loopml._cron` (cronsim, with Vixie cron's semantics and
macros) in ``retrain.timezone``; finding the next run walks field by field, so it is instant
whatever the expression.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopml._cron import next_run, normalize
from loopml.errors import ConfigError

__all__ = ["cron_due", "next_run", "parse_cron"]


def parse_cron(expression: str, key: str = "retrain.schedule") -> str:
    """``expression`` as five checked fields (a macro such as ``@daily`` expanded); a bad one is a
    :class:`~loopml.errors.ConfigError` naming ``key``.

    Examples
    --------
    >>> parse_cron("@hourly")
    '0 * * * *'
    >>> parse_cron("0 9 * * MOO")
    Traceback (most recent call last):
    ...
    loopml.errors.ConfigError: retrain.schedule '0 9 * * MOO': bad day-of-week field 'MOO': ... 'MON'?
    """
    try:
        return normalize(expression)
    except ValueError as exc:
        text = str(exc)
        raise ConfigError(f"{key} '{expression}': {text}{'' if text.endswith(('.', '?')) else '.'}") from None


def cron_due(expression: str, last: datetime | None, now: datetime, zone: str = "UTC") -> bool:
    """Whether ``expression`` (read in ``zone``) names a time in ``(last, now]``; with no ``last``,
    in the day before ``now``. Naive times are UTC."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    since = last or now - timedelta(days=1)
    return next_run(parse_cron(expression), since, zone) <= now
