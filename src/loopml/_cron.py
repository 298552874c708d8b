"""Cron expressions as written in ``loopml.yaml`` (``retrain.schedule``): one parser, from a library.

Expressions are read by `cronsim <https://pypi.org/project/cronsim/>`_ (the cron engine of
Healthchecks.io), which follows Vixie cron, the cron of Debian and most Linux systems: five fields
(minute hour day-of-month month day-of-week); names (``JAN``-``DEC``, ``SUN``-``SAT``); ``0`` or ``7``
for Sunday; ranges, lists and steps; ``L`` (last day), ``5L`` (last Friday), ``MON#2`` (second Monday);
and when both day fields are restricted a day matches **either** of them (``0 0 1 * MON``: the 1st of
each month and every Monday), unless one of them starts with ``*`` (then both must match). The macros
of Vixie cron are expanded first: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``) and ``@hourly``. ``@reboot`` and six-field expressions (seconds) are refused.

Times are evaluated in a time zone (``retrain.timezone``, UTC by default), across daylight-saving
changes as cron does: a time that does not exist that day runs when the clock jumps over it, a time
that exists twice runs once. Finding the next run walks field by field, not minute by minute.

Examples
--------
>>> from datetime import datetime, UTC
>>> next_run("0 0 1 * MON", datetime(2026, 1, 27, tzinfo=UTC)).isoformat()  # a Tuesday: then Feb 1st
'2026-02-01T00:00:00+00:00'
>>> normalize("@daily")
'0 0 * * *'
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from loopml.errors import closest

if TYPE_CHECKING:
    from cronsim import CronSim

__all__ = ["MACROS", "cron_zone", "next_run", "normalize"]

# Vixie cron's macros (crontab(5)); @reboot is not a time and is refused.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = "minute hour day-of-month month day-of-week"
_FORMS = f"write 5 fields ({_FIELDS}), e.g. '0 3 * * *', or @yearly, @monthly, @weekly, @daily or @hourly"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ORDER = ("minute", "hour", "day-of-month", "month", "day-of-week")
_NAMES = {
    "month": ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    "day-of-week": ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
}
_VALUES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31 or L (the last day)",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 (0 and 7: Sunday) or SUN-SAT, 5L (the last Friday), MON#2 (the second Monday)",
}


@functools.lru_cache(maxsize=256)
def normalize(expression: str) -> str:
    """``expression`` as five checked fields (a macro expanded); a ``ValueError`` saying what is wrong
    and how to write it otherwise (the caller names the key)."""
    text = " ".join(str(expression).split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            near = closest(text.lower(), MACROS)
            hint = f"did you mean '{near}'? or " if near else ""
            raise ValueError(f"no cron macro is called '{text}'; {hint}{_FORMS}")
        text = MACROS[text.lower()]
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} field(s), not 5; {_FORMS}")
    _sim(text, _EPOCH)  # refuses a bad field, and a day that never comes (0 0 30 2 *)
    return text


def _sim(fields: str, start: datetime) -> CronSim:
    from cronsim import CronSim, CronSimError

    try:
        return CronSim(fields, start)
    except CronSimError as exc:
        which = str(exc).lower().removeprefix("bad ").strip()
        if which not in _ORDER:
            raise ValueError(f"{exc}; {_FORMS}") from None
        raise ValueError(_field_error(fields.split(" "), which)) from None


def _field_error(fields: list[str], which: str) -> str:
    """What is wrong with field ``which`` of ``fields``: its text, what it takes, a close name."""
    from cronsim import CronSim, CronSimError

    text = fields[_ORDER.index(which)]
    names = _NAMES.get(which, ())
    for word in re.findall(r"[A-Za-z]{2,}", text):
        upper = word.upper()
        swapped = [n for n in names if sorted(n) == sorted(upper)]  # JNA: JAN, before difflib's JUN
        near = None if upper in names else (swapped[0] if swapped else closest(upper, names))
        if near:
            return f"bad {which} field '{text}': no {which} is called '{word}'; did you mean '{near}'?"
    if which == "day-of-month":
        try:  # a day that exists in no month named (0 0 30 2 *) is no syntax error
            CronSim(f"0 0 {text} * *", _EPOCH)
            return f"bad {which} field '{text}': that day never comes in month(s) '{fields[3]}'"
        except CronSimError:
            pass
    return f"bad {which} field '{text}': use {_VALUES[which]}, with lists (1,15), ranges (1-5), steps (*/15)"


@functools.lru_cache(maxsize=64)
def cron_zone(name: str) -> tzinfo:
    """The time zone called ``name`` (an IANA name such as ``Europe/Berlin``, or ``UTC``); a
    ``ValueError`` naming the closest known zone otherwise."""
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        near = closest(name, available_timezones())
        hint = f"did you mean '{near}'?" if near else "use an IANA name such as Europe/Berlin"
        raise ValueError(f"no time zone is called so; {hint}") from None


def next_run(expression: str, after: datetime, zone: str = "UTC") -> datetime:
    """The first time strictly after ``after`` that ``expression`` names, read in ``zone``; aware, in
    UTC. ``after`` may be naive (then it is UTC, as every time in the store)."""
    start = after if after.tzinfo is not None else after.replace(tzinfo=UTC)
    local = start.astimezone(cron_zone(zone)).replace(microsecond=0)
    found: datetime = next(_sim(normalize(expression), local))
    return found.astimezone(UTC)
