"""The event time's plausible range (``ScoringPolicy``), enforced on request records
(``RecordChecker``) and on batch rows (``check_rows``), from the project's settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from loopml.config import parse_settings
from loopml.validate import ColumnSpec, DataContract, RecordChecker, ScoringPolicy, check_rows

CONTRACT = DataContract(
    name="t",
    columns=[ColumnSpec(name="ts", dtype="datetime"), ColumnSpec(name="x", dtype="float")],
    event_time="ts",
)
TRAINED_FROM = datetime(2026, 1, 1)
POLICY = ScoringPolicy(event_time_before=timedelta(days=30)).for_version(TRAINED_FROM)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def settings(extra: str = "") -> str:
    return "name: t\nsource: {kind: csv, path: a.csv}\ntarget: y\n" + extra


def test_the_range_comes_from_the_settings() -> None:
    default = ScoringPolicy.of(parse_settings(settings(), environ={}))
    assert (default.event_time_ahead, default.event_time_before) == (timedelta(days=1), timedelta(days=1))
    windows = (
        "event_time: ts\nfeatures:\n  windows:\n    - {entity: c, windows: [1d, 30d], label_delay: 7d}\n"
        "monitor: {window: 7d}\n"
    )
    assert ScoringPolicy.of(parse_settings(settings(windows), environ={})).event_time_before == timedelta(
        days=37
    )
    off = parse_settings(
        settings("contract: {event_time_ahead: null, event_time_before: null}\n"), environ={}
    )
    policy = ScoringPolicy.of(off).for_version(TRAINED_FROM)
    assert policy.event_time_range(now()) == (None, None)
    fixed = parse_settings(
        settings("contract: {event_time_ahead: 2h, event_time_before: 365d}\n"), environ={}
    )
    low, high = ScoringPolicy.of(fixed).for_version(TRAINED_FROM).event_time_range(datetime(2026, 6, 1))
    assert (low, high) == (datetime(2025, 1, 1), datetime(2026, 6, 1, 2))


# Ids and values are fixed at collection (pytest-xdist's workers must collect the same ids): a time
# relative to the clock is written "now+2d" and resolved when the test runs.
@pytest.mark.parametrize(
    ("sent", "said"),
    [
        pytest.param("2200-01-01T00:00:00", "is more than 1d ahead of the server clock", id="year-2200"),
        pytest.param("now+2d", "is more than 1d ahead of the server clock", id="two-days-ahead"),
        pytest.param(
            "2025-11-01T00:00:00",
            "is before 2025-12-02T00:00:00, the earliest this model accepts",
            id="before-training-less-window",
        ),
        pytest.param("2025-12-31T00:00:00+05:00", None, id="inside-with-offset"),  # 19:00 UTC the 30th
    ],
)
def test_request_records_outside_the_range_are_refused(sent: str, said: str | None) -> None:
    if sent == "now+2d":
        sent = (now() + timedelta(days=2)).isoformat()
    checked, violations = RecordChecker(CONTRACT, ["x"], POLICY).check([{"x": 1.0, "ts": sent}])
    if said is None:
        assert not violations and checked.logged[0]["ts"] == sent  # logged as sent
        return
    assert [(v.column, v.rule) for v in violations] == [("ts", "range")]
    assert said in violations[0].message("ts") and "contract.event_time_" in violations[0].message("ts")


def test_the_event_time_is_checked_and_logged_when_sent_though_no_input() -> None:
    checker = RecordChecker(CONTRACT, ["x"], POLICY)
    checked, violations = checker.check([{"x": 1.0, "ts": "2026-02-01T00:00:00"}, {"x": 2.0}])
    assert not violations
    assert checked.logged == [{"x": 1.0, "ts": "2026-02-01T00:00:00"}, {"x": 2.0}]
    assert checked.rows[0]["ts"] == datetime(2026, 2, 1) and "ts" not in checked.rows[1]
    _, bad = checker.check([{"x": 1.0, "ts": 1700000000}])
    assert [(v.column, v.rule) for v in bad] == [("ts", "type")]


def test_batch_rows_outside_the_range_are_quarantined() -> None:
    raw = pd.DataFrame(
        {"ts": ["2026-02-01", "2200-01-01", "2020-01-01", "2026-03-01"], "x": ["1", "2", "3", "4"]}
    )
    coerced = pd.DataFrame({"ts": pd.to_datetime(raw["ts"]), "x": [1.0, 2.0, 3.0, 4.0]})
    found = check_rows(raw, coerced, CONTRACT, POLICY)
    assert found.kept is not None and found.kept.tolist() == [True, False, False, True]
    assert found.counts == {"range": 2}
    assert found.quarantined[["_row", "_rule", "_column"]].values.tolist() == [
        [1, "range", "ts"],
        [2, "range", "ts"],
    ]
