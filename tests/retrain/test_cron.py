"""``retrain.schedule``: standard cron (Vixie cron, as cronsim reads it), checked on a table of
expressions whose next runs were worked out by hand on a calendar, and against croniter, an
independent implementation, wherever the two libraries agree on the semantics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from loopml._cron import next_run
from loopml.config import parse_settings
from loopml.errors import ConfigError
from loopml.retrain import cron_due, parse_cron

START = datetime(2026, 1, 20, 14, 30, tzinfo=UTC)  # a Tuesday

# (expression, first run after START, the run after that), in UTC. January 2026 starts on a
# Thursday; 2026-02-01 and 2026-01-25 are Sundays; 2028 is the next leap year.
TABLE = [
    ("* * * * *", "2026-01-20T14:31", "2026-01-20T14:32"),
    ("*/15 * * * *", "2026-01-20T14:45", "2026-01-20T15:00"),
    ("10-20/5 * * * *", "2026-01-20T15:10", "2026-01-20T15:15"),
    ("0 * * * *", "2026-01-20T15:00", "2026-01-20T16:00"),
    ("23 0-20/2 * * *", "2026-01-20T16:23", "2026-01-20T18:23"),
    ("30 2 * * *", "2026-01-21T02:30", "2026-01-22T02:30"),
    ("0 3 * * *", "2026-01-21T03:00", "2026-01-22T03:00"),
    # both day fields restricted: the 1st of the month OR any Monday
    ("0 0 1 * MON", "2026-01-26T00:00", "2026-02-01T00:00"),
    ("0 0 13 * FRI", "2026-01-23T00:00", "2026-01-30T00:00"),
    ("0 6 1,15 * 3", "2026-01-21T06:00", "2026-01-28T06:00"),
    # 7 and 0 are both Sunday; names in any case
    ("0 9 * * 7", "2026-01-25T09:00", "2026-02-01T09:00"),
    ("0 9 * * 0", "2026-01-25T09:00", "2026-02-01T09:00"),
    ("5 4 * * sun", "2026-01-25T04:05", "2026-02-01T04:05"),
    ("0 0 * * 6-7", "2026-01-24T00:00", "2026-01-25T00:00"),
    ("0 18 * * SAT,SUN", "2026-01-24T18:00", "2026-01-25T18:00"),
    ("0 9 * * MON-FRI", "2026-01-21T09:00", "2026-01-22T09:00"),
    ("0 9 * * 1-5", "2026-01-21T09:00", "2026-01-22T09:00"),
    ("0 22 * * 1-5", "2026-01-20T22:00", "2026-01-21T22:00"),
    ("*/5 9-17 * * MON-FRI", "2026-01-20T14:35", "2026-01-20T14:40"),
    # macros
    ("@daily", "2026-01-21T00:00", "2026-01-22T00:00"),
    ("@midnight", "2026-01-21T00:00", "2026-01-22T00:00"),
    ("@hourly", "2026-01-20T15:00", "2026-01-20T16:00"),
    ("@weekly", "2026-01-25T00:00", "2026-02-01T00:00"),
    ("@monthly", "2026-02-01T00:00", "2026-03-01T00:00"),
    ("@yearly", "2027-01-01T00:00", "2028-01-01T00:00"),
    ("@annually", "2027-01-01T00:00", "2028-01-01T00:00"),
    # months, days that are not in every month
    ("0 0 * JAN-MAR *", "2026-01-21T00:00", "2026-01-22T00:00"),
    ("0 12 1 JUL *", "2026-07-01T12:00", "2027-07-01T12:00"),
    ("0 0,12 1 */2 *", "2026-03-01T00:00", "2026-03-01T12:00"),
    ("0 4 8-14 * *", "2026-02-08T04:00", "2026-02-09T04:00"),
    ("0 0 31 * *", "2026-01-31T00:00", "2026-03-31T00:00"),
    ("0 0 29 2 *", "2028-02-29T00:00", "2032-02-29T00:00"),
    ("59 23 31 12 *", "2026-12-31T23:59", "2027-12-31T23:59"),
    ("0 0 1 1 *", "2027-01-01T00:00", "2028-01-01T00:00"),
    ("15 10 L * *", "2026-01-31T10:15", "2026-02-28T10:15"),
    ("0 8 * * MON#2", "2026-02-09T08:00", "2026-03-09T08:00"),
    # beyond croniter: the last Friday; a day field starting with '*' makes the days AND (Vixie)
    ("0 0 * * 5L", "2026-01-30T00:00", "2026-02-27T00:00"),
    ("0 0 1-7 * */2", "2026-02-01T00:00", "2026-02-03T00:00"),
]
NOT_IN_CRONITER = {"0 0 * * 5L", "0 0 1-7 * */2"}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_table_is_big_enough() -> None:
    assert len(TABLE) >= 30
    assert {"0 0 1 * MON", "@daily", "0 9 * * 7"} <= {row[0] for row in TABLE}


@pytest.mark.parametrize(("expression", "first", "second"), TABLE)
def test_next_runs(expression: str, first: str, second: str) -> None:
    found = next_run(expression, START)
    assert found == _utc(first)
    assert next_run(expression, found) == _utc(second)
    assert cron_due(expression, START, found) and not cron_due(
        expression, START, found - timedelta(seconds=1)
    )


@pytest.mark.parametrize(("expression", "first", "second"), [r for r in TABLE if r[0] not in NOT_IN_CRONITER])
def test_croniter_agrees(expression: str, first: str, second: str) -> None:
    croniter = pytest.importorskip("croniter").croniter
    runs = croniter(expression, START)
    assert [runs.get_next(datetime), runs.get_next(datetime)] == [_utc(first), _utc(second)]


def test_time_zones_and_daylight_saving() -> None:
    assert next_run("0 3 * * *", START, "Europe/Berlin") == _utc("2026-01-21T02:00")  # CET is UTC+1
    assert next_run("0 3 * * *", _utc("2026-07-01T00:00"), "Europe/Berlin") == _utc("2026-07-01T01:00")
    # 2026-03-29 02:30 does not exist in Berlin (02:00 -> 03:00): cron runs when the clock jumps over it
    assert next_run("30 2 * * *", _utc("2026-03-28T12:00"), "Europe/Berlin") == _utc("2026-03-29T01:00")
    assert next_run("0 9 * * MON-FRI", START, "America/New_York") == _utc("2026-01-21T14:00")


def test_naive_times_are_utc() -> None:
    assert next_run("@daily", START.replace(tzinfo=None)) == _utc("2026-01-21T00:00")
    last, now = datetime(2026, 1, 5, 2, 0), datetime(2026, 1, 5, 3, 30)  # a Monday
    assert cron_due("0 3 * * 1-5", last, now)
    assert not cron_due("0 3 * * 0", last, now)  # Sundays only
    assert not cron_due("0 3 * * *", now, now)
    assert cron_due("0 3 * * *", None, now)  # no last check: the day before counts


def test_next_run_is_instant() -> None:
    started = time.perf_counter()
    for expression in ("0 0 29 2 *", "59 23 31 12 *", "0 0 13 * FRI", "0 0 * * 5L"):
        for _ in range(50):
            next_run(expression, START)
    assert time.perf_counter() - started < 1.0  # 200 look-ups; scanning minutes took 1.4 s for one


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 3 * *", "4 field(s), not 5"),
        ("* * * * * *", "6 field(s), not 5"),
        ("61 * * * *", "bad minute field '61': use 0-59"),
        ("*/0 * * * *", "bad minute field '*/0'"),
        ("0 24 * * *", "bad hour field '24': use 0-23"),
        ("0 0 32 * *", "bad day-of-month field '32': use 1-31"),
        ("0 0 30 2 *", "bad day-of-month field '30': that day never comes in month(s) '2'"),
        ("0 0 31 4,6 *", "never comes in month(s) '4,6'"),
        ("0 0 * 13 *", "bad month field '13': use 1-12 or JAN-DEC"),
        ("0 9 * JNA *", "no month is called 'JNA'; did you mean 'JAN'?"),
        ("0 0 * * MOO", "bad day-of-week field 'MOO': no day-of-week is called 'MOO'; did you mean 'MON'?"),
        ("0 0 * * 8", "bad day-of-week field '8': use 0-7 (0 and 7: Sunday)"),
        ("@dayly", "did you mean '@daily'?"),
        ("@reboot", "no cron macro"),
        ("", "0 field(s)"),
    ],
)
def test_a_bad_expression_is_a_config_error_naming_the_key(expression: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cron(expression)
    assert str(info.value).startswith(f"retrain.schedule '{expression}': ") and says in str(info.value)
    text = f"name: x\nsource: {{path: a.csv}}\ntarget: y\nretrain:\n  schedule: '{expression}'\n"
    with pytest.raises(ConfigError) as loaded:
        parse_settings(text, project_dir="/tmp")
    message = str(loaded.value)
    assert message.startswith("loopml.yaml line 5: 'retrain.schedule' is ") and says in message
    assert "\n" not in message and "Traceback" not in message


def test_a_bad_time_zone_names_the_key_and_the_closest_zone() -> None:
    text = (
        "name: x\nsource: {path: a.csv}\ntarget: y\nretrain: {schedule: '@daily', timezone: Europe/Berlim}\n"
    )
    with pytest.raises(
        ConfigError, match=r"'retrain.timezone' is 'Europe/Berlim'.*did you mean 'Europe/Berlin'"
    ):
        parse_settings(text, project_dir="/tmp")
    good = text.replace("Berlim", "Berlin")
    assert parse_settings(good, project_dir="/tmp").retrain.timezone == "Europe/Berlin"
