"""A replay on ``retrain.clock: event``: the cooldown and the schedule are measured in the data's time,
so replaying weeks of history in seconds runs every cycle that falls due in the data; on the wall
clock the same replay runs one, and every skipped check says why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopml.enums import CycleStatus
from loopml.examples import write_example
from loopml.examples.fraud import simulate
from loopml.project import Project

FIRST_DAYS, WEEKS = 14, 3
LABELS = ["tx_fraud", "tx_fraud_scenario"]


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return simulate(days=FIRST_DAYS + 7 * WEEKS, regime_change_day=None, n_customers=300, n_terminals=1_500)


def _project(root: Path, rows: pd.DataFrame, clock: str) -> Project:
    write_example("fraud", root, days=5, regime_change_day=None, n_customers=50, n_terminals=100)
    rows.to_parquet(root / "data" / "transactions.parquet", index=False)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(bootstrap=0, report=False, params={"n_estimators": 20, "n_jobs": 1})
    config["source"]["watermark"] = "tx_datetime"
    config.pop("actions", None)
    # A daily check in the data's time, and at least three days between two cycles.
    config["retrain"] = {"schedule": "0 0 * * *", "cooldown": "3d", "clock": clock}
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    proj = Project.open(root)
    proj.ingest()
    proj.train()
    return proj


def _replay(root: Path, events: pd.DataFrame, clock: str) -> list[dict[str, object]]:
    """Week by week: the week's traffic is scored by the champion (and logged), its labelled rows
    land in the source, and the policy decides."""
    days = events["tx_time_days"]
    proj = _project(root, events[days < FIRST_DAYS], clock)
    results = []
    for week in range(WEEKS):
        start, end = FIRST_DAYS + 7 * week, FIRST_DAYS + 7 * (week + 1)
        traffic = events[(days >= start) & (days < end)]
        traffic.drop(columns=LABELS).to_parquet(root / "week.parquet", index=False)
        proj.predictions.predict_file(root / "week.parquet", root / "scored.parquet", actions=False)
        events[days < end].to_parquet(root / "data" / "transactions.parquet", index=False)
        results.append(proj.retrain.run()[0].to_dict())
    return results


def test_a_replay_on_the_event_clock_runs_every_due_cycle(tmp_path: Path, events: pd.DataFrame) -> None:
    results = _replay(tmp_path / "event", events, "event")
    assert [r["ran"] for r in results] == [True] * WEEKS, [r["skipped_because"] for r in results]
    assert all(r["status"] in (CycleStatus.PROMOTED, CycleStatus.REJECTED) for r in results)
    newest = [pd.Timestamp(r["clock_at"]) for r in results]  # "now" is the newest scored event time
    times = pd.to_datetime(events["tx_datetime"]).dt.tz_localize("UTC")
    for week, at in enumerate(newest):
        assert at == times[events["tx_time_days"] < FIRST_DAYS + 7 * (week + 1)].max()


def test_the_same_replay_on_the_wall_clock_skips_and_says_why(tmp_path: Path, events: pd.DataFrame) -> None:
    results = _replay(tmp_path / "wall", events, "wall")
    assert results[0]["ran"] and not any(r["ran"] for r in results[1:])
    for skipped in results[1:]:
        assert skipped["skipped_because"] == "no trigger fired"  # the schedule is not due on the wall clock
        assert skipped["status"] == CycleStatus.SKIPPED


def test_a_cycle_runs_once_the_labels_after_an_alert_are_in(tmp_path: Path, events: pd.DataFrame) -> None:
    """``retrain.after_alert_labels``: an alert (here the drift of amounts five times larger), then the
    labels of the traffic since its window; one cycle answers it, and the same alert starts no other."""
    root, days = tmp_path / "alert", events["tx_time_days"]
    proj = _project(root, events[days < FIRST_DAYS], "event")
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["retrain"] = {
        "after_alert_labels": 200,
        "alert_kinds": ["drift"],
        "clock": "event",
        "cooldown": "1h",
    }
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    proj = Project.open(root)
    week = events[(days >= FIRST_DAYS) & (days < FIRST_DAYS + 7)].assign(
        tx_amount=lambda f: f["tx_amount"] * 5
    )
    week.drop(columns=LABELS).to_parquet(root / "week.parquet", index=False)
    proj.predictions.predict_file(root / "week.parquet", root / "scored.parquet", actions=False)
    before = proj.retrain.run()[0].to_dict()  # the monitor raises the alert; no label is in yet
    assert not before["ran"] and before["skipped_because"] == "no trigger fired"
    alert = proj.retrain.events("decision", limit=1)[0].details["alert"]
    assert (
        alert["kind"] == "drift"
        and proj.retrain.events("decision", limit=1)[0].details["labels_after_alert"] == 0
    )
    scored = pd.read_parquet(root / "scored.parquet").merge(week[["transaction_id", "tx_fraud"]])
    proj.predictions.feedback(
        [
            {"prediction_id": p, "label": int(y)}
            for p, y in zip(scored["prediction_id"], scored["tx_fraud"], strict=True)
        ]
    )
    pd.concat([events[days < FIRST_DAYS], week]).to_parquet(
        root / "data" / "transactions.parquet", index=False
    )
    answered = proj.retrain.run()[0].to_dict()
    assert answered["ran"], answered["skipped_because"]
    assert any(t.startswith("drift alert") and "threshold 200" in t for t in answered["triggers"])
    cycle = proj.retrain.events("cycle", limit=1)[0]
    assert cycle.details["answers_alert"] == alert["id"]
    again = proj.retrain.run()[0].to_dict()  # the same alert, already answered: no new cycle
    assert not again["ran"] and not any("alert" in t for t in again["triggers"])
