"""The fraud simulator's regime change, replayed day by day through the project API.

Both runs train on the same span (days 0-28) of the seeded simulator, then score one ordinary day
(29) and the first days of the new fraud pattern (30, 31), or the same days without a change. The
labels of a day arrive in one bulk file at the end of that day (investigators' daily review), then
the monitor runs. The fraudsters' adaptation is concept drift: the inputs barely move (a fraction of
a percent of the transactions change), but the new frauds get low scores. It must show within the
first day of the new pattern as both a concept-drift alert and a realized-performance alert, while
the control run raises no alert at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from loopml.cli import app
from loopml.examples import write_example
from loopml.monitor import MonitorReport
from loopml.project import Project

CHANGE_DAY = 30
CUT = CHANGE_DAY - 1  # the first replayed day is an ordinary one


def _project(root: Path, change: int | None) -> tuple[Project, pd.DataFrame]:
    """A trained fraud project on days 0-28 and the days after it, whatever ``change`` is."""
    write_example("fraud", root, days=CHANGE_DAY + 10, regime_change_day=change)
    data = root / "data"
    frame = pd.concat(
        [pd.read_parquet(data / "transactions.parquet"), pd.read_parquet(data / "replay.parquet")]
    )
    history = frame["tx_time_days"] < CUT
    frame[history].to_parquet(data / "transactions.parquet", index=False)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(params={"n_estimators": 30}, bootstrap=0, report=False)
    config["monitor"].update(min_rows=100)
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    project = Project.open(root)
    project.ingest()
    project.train()
    return project, frame[~history].reset_index(drop=True)


def _replay_day(project: Project, day: pd.DataFrame, folder: Path) -> MonitorReport:
    """Score the day's transactions, then its labels arrive, then the monitor runs."""
    day.drop(columns=["tx_fraud", "tx_fraud_scenario"]).to_parquet(folder / "day.parquet", index=False)
    project.predictions.predict_file(folder / "day.parquet", folder / "scored.parquet")
    scored = pd.read_parquet(folder / "scored.parquet").merge(day[["transaction_id", "tx_fraud"]])
    labels = pd.DataFrame({"prediction_id": scored["prediction_id"], "label": scored["tx_fraud"]})
    labels.to_parquet(folder / "labels.parquet", index=False)
    assert project.predictions.feedback_file(folder / "labels.parquet").accepted == len(day)
    return project.monitor.run()


def _days(replay: pd.DataFrame, first: int, last: int) -> list[pd.DataFrame]:
    return [replay[replay["tx_time_days"] == d] for d in range(first, last + 1)]


def test_the_regime_change_is_caught_within_a_day_and_the_control_stays_quiet(tmp_path: Path) -> None:
    project, replay = _project(tmp_path / "regime", CHANGE_DAY)
    before, changed, after = _days(replay, CUT, CHANGE_DAY + 1)
    quiet = _replay_day(project, before, tmp_path)
    assert quiet.alerts == [], quiet.alerts
    report = _replay_day(project, changed, tmp_path)
    assert {a["kind"] for a in report.alerts} >= {"performance", "concept_drift"}, report.alerts
    assert all(a["window_start"] == pd.Timestamp("2026-01-31") for a in report.alerts)
    assert report.concept_drift is not None and report.concept_drift.drifted
    assert report.performance["realized"]["average_precision"] < 0.4
    assert report.performance["positives"] >= 10  # enough frauds for a verdict
    assert "tx_amount" not in report.drifted_features  # the inputs hardly moved: concept drift only

    # The next day's predictions are in, its labels not yet: realized performance and concept drift
    # still come from the latest labelled window (day 30), and its alerts are not recorded twice.
    after.drop(columns=["tx_fraud", "tx_fraud_scenario"]).to_parquet(tmp_path / "next.parquet")
    project.predictions.predict_file(tmp_path / "next.parquet", tmp_path / "next-scored.parquet")
    result = CliRunner().invoke(app, ["monitor", "-p", str(tmp_path / "regime"), "--json"])
    assert result.exit_code == 0, result.output
    pending = json.loads(result.stdout)
    assert {"window", "drifted_features", "performance", "estimated_performance", "alerts"} <= set(pending)
    assert isinstance(pending["drifted_features"], list)
    assert all(isinstance(name, str) for name in pending["drifted_features"])
    assert pending["window"]["start"].startswith("2026-02-01")
    performance = pending["performance"]
    assert performance["window_start"].startswith("2026-01-31")
    assert performance["label_coverage"] == 1.0 and "average_precision" in performance["realized"]
    assert 0 < pending["estimated_performance"]["average_precision"] <= 1
    assert pending["concept_drift"]["drifted"] is True
    assert {a["kind"] for a in pending["alerts"]} >= {"performance", "concept_drift"}

    control, control_replay = _project(tmp_path / "control", None)
    reports = [_replay_day(control, day, tmp_path) for day in _days(control_replay, CUT, CHANGE_DAY + 1)]
    assert [r.alerts for r in reports] == [[], [], []]
    assert not any(r.concept_drift and r.concept_drift.drifted for r in reports)
    # a day with few frauds (6 on day 29) gives a noisy AP and, by design, no verdict
    enough = [r.performance for r in reports if r.performance["positives"] >= 10]
    assert len(enough) == 2 and all(p["realized"]["average_precision"] >= 0.4 for p in enough)
