"""The fraud simulator's regime change, replayed day by day through the project API.

Both runs train on the same span (days 0-43) of the seeded simulator, then score one ordinary day
(44) and the first days of the new fraud pattern (45-47), or the same days without a change (the
30-day window features are complete from day 30 on, so the reference and the replayed days compare
like with like). The labels of a day arrive in one bulk file at the end of that day (investigators'
daily review), then the monitor runs. The fraudsters' adaptation is concept drift: the inputs barely
move (a fraction of a percent of the transactions change), but the new frauds get low scores. It
must show on the first day of the new pattern as a realized-performance alert and by the second as
a label-free estimate marked unreliable (its labels contradict it), while the control run raises no
alert at all and its estimate stays reliable.

Which derived inputs "actually moved" is known without the monitor: the simulator draws the ordinary
transactions first, from the same seed in both runs, so the same transaction (customer, terminal,
second) is in both worlds; a derived input moved when its value at those transactions differs
between the world with the change and the world without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from loopml.cli import app
from loopml.examples import write_example
from loopml.features import window_features, window_specs
from loopml.monitor import MonitorReport, load_predictions, model_inputs, reference_profile
from loopml.project import Project
from loopml.store import tables
from loopml.train.reference import model_input_frame

CHANGE_DAY = 45
CUT = CHANGE_DAY - 1  # the first replayed day is an ordinary one
DAY_ONE = pd.Timestamp("2026-01-01")  # the simulator's day 0
CHANGED, NEXT = DAY_ONE + pd.Timedelta(days=CHANGE_DAY), DAY_ONE + pd.Timedelta(days=CHANGE_DAY + 1)


def _project(root: Path, change: int | None) -> tuple[Project, pd.DataFrame]:
    """A trained fraud project on the days before ``CUT`` and the days after, whatever ``change`` is."""
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


def _movers_rank_first(report: MonitorReport) -> None:
    """What moved is the cards' spending pattern (bursts of small payments): the first-ranked column is
    one of the card's window features or what the model derives from them, and its shift is
    significant, though too small (a few dozen of 1,600 transactions) to reach the PSI warning level."""
    top = report.drift[0]
    assert top.column.startswith("customer_id__tx_amount__") and top.source in ("window", "derived"), top
    assert top.significant and top.level == "ok" and top.psi < 0.1, top


def _logged_window(project: Project, report: MonitorReport) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The report's window as the monitor sees it: the logged predictions, the model's inputs
    recomputed from them, and the names of the derived inputs."""
    version, store = project.models.get(), project.store
    frame = load_predictions(store.engine, project.name, event_time="tx_datetime")
    start, end = (pd.Timestamp(report.window[k]) for k in ("start", "end"))
    rows = frame[(frame["time"] >= start) & (frame["time"] < end)]
    profile = reference_profile(store, version)
    assert profile is not None
    seen, notes = model_inputs(store, version, profile, frame, rows, start, end)
    assert notes == []
    derived = [c for c, p in profile.columns.items() if p.source in ("window", "derived")]
    return rows, seen, derived


Inputs = tuple[pd.DataFrame, list[str]]  # a window's model inputs and the derived ones' names


def _window_inputs(project: Project, report: MonitorReport) -> Inputs:
    """The model's inputs over the report's window, indexed by the transaction's identity in the
    simulator (customer, terminal, second); and the names of the derived inputs."""
    rows, seen, derived = _logged_window(project, report)
    seen.index = pd.MultiIndex.from_tuples(
        [(i["customer_id"], i["terminal_id"], str(i["tx_datetime"])) for i in rows["inputs"]]
    )
    return seen, derived


def _real_movers(changed: Inputs, control: Inputs) -> set[str]:
    """The derived inputs whose value differs, at the same ordinary transactions, between the world
    with the change and the one without (the burst frauds exist in one world only)."""
    (seen, derived), (same_day, _) = changed, control
    both = seen.index.intersection(same_day.index)
    assert len(both) > 0.9 * len(same_day)  # the ordinary transactions are the same in both worlds
    a, b = seen.loc[both, derived].astype(float), same_day.loc[both, derived].astype(float)
    differ = ~np.isclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
    return {c for c, moved in zip(derived, differ.any(axis=0), strict=True) if moved}


def _flagged_on_the_movers(report: MonitorReport, movers: set[str], derived: list[str]) -> None:
    """Every derived input the report finds significantly shifted is one that moved, the first-ranked
    column is one of them, and the inputs that did not move are left alone."""
    still = set(derived) - movers
    assert movers and still, (movers, still)  # the change moves some derived inputs, not all
    shifted = {d.column for d in report.drift if d.significant and d.column in set(derived)}
    assert shifted and shifted <= movers, (shifted - movers, movers)
    assert report.drift[0].column in movers, (report.drift[0], movers)


def _recomputed_as_offline(project: Project, root: Path, day: pd.DataFrame, report: MonitorReport) -> None:
    """The model's derived inputs that drift is judged on, recomputed from the logged requests, are
    the point-in-time values training computes offline from the same transactions."""
    rows, seen, derived = _logged_window(project, report)
    assert len(derived) > 20 and set(derived) <= set(seen.columns)
    history = pd.read_parquet(root / "data" / "transactions.parquet")
    both = pd.concat([history, day], ignore_index=True)
    specs = window_specs(project.settings.features)
    offline = window_features(both, specs, "tx_datetime", "transaction_id").iloc[len(history) :]
    offline.index = both.iloc[len(history) :]["transaction_id"].to_numpy()
    matrix = model_input_frame(
        project.models.load().pipeline,
        pd.concat([day.reset_index(drop=True), offline.reset_index(drop=True)], axis=1),
    )
    assert matrix is not None
    matrix.index = offline.index
    ids = [i["transaction_id"] for i in rows["inputs"]]
    for column in derived:
        expected = (offline[column] if column in offline.columns else matrix[column]).loc[ids]
        got = seen[column].to_numpy(dtype=float)
        assert np.allclose(got, expected.to_numpy(dtype=float), rtol=1e-9, atol=1e-9, equal_nan=True), column


def test_the_regime_change_is_caught_in_two_days_and_the_control_stays_quiet(tmp_path: Path) -> None:
    project, replay = _project(tmp_path / "regime", CHANGE_DAY)
    before, changed, second, third = _days(replay, CUT, CHANGE_DAY + 2)
    quiet = _replay_day(project, before, tmp_path)
    assert quiet.alerts == [] and quiet.estimate["reliable"], quiet.alerts
    _recomputed_as_offline(project, tmp_path / "regime", before, quiet)
    # The first day of the new pattern: realized performance falls under the floor.
    report = _replay_day(project, changed, tmp_path)
    first_day = report, _window_inputs(project, report)
    assert "performance" in {a["kind"] for a in report.alerts}, report.alerts
    assert all(a["window_start"] == CHANGED for a in report.alerts)
    assert report.performance["realized"]["average_precision"] < 0.4
    assert report.performance["positives"] >= 10  # enough frauds for a verdict
    assert "tx_amount" not in report.drifted_features  # the inputs hardly moved: concept drift
    _movers_rank_first(report)
    # The second: its labels contradict the label-free estimate, which is marked unreliable, in the
    # report and in an alert (the example sets an estimated floor), and re-calibrated on them.
    report = _replay_day(project, second, tmp_path)
    _movers_rank_first(report)
    assert not report.estimate["reliable"] and "positives among" in report.estimate["reasons"][0]
    assert report.estimate["calibration"]["used"] == "recent labels"
    warned = [a for a in report.alerts if a["subject"] == "reliability"]
    assert len(warned) == 1 and "unreliable" in warned[0]["message"], report.alerts

    # The next day's predictions are in, its labels not yet: realized performance and the check
    # still come from the latest labelled window, and its alerts are not recorded twice.
    third.drop(columns=["tx_fraud", "tx_fraud_scenario"]).to_parquet(tmp_path / "next.parquet")
    project.predictions.predict_file(tmp_path / "next.parquet", tmp_path / "next-scored.parquet")
    result = CliRunner().invoke(app, ["monitor", "-p", str(tmp_path / "regime"), "--json"])
    assert result.exit_code == 0, result.output
    pending = json.loads(result.stdout)
    assert {"window", "drifted_features", "performance", "estimated_performance", "alerts"} <= set(pending)
    assert isinstance(pending["drifted_features"], list)
    assert all(isinstance(name, str) for name in pending["drifted_features"])
    assert pending["window"]["start"].startswith(str(NEXT.date() + pd.Timedelta(days=1)))
    performance = pending["performance"]
    assert performance["window_start"].startswith(str(NEXT.date()))
    assert performance["label_coverage"] == 1.0 and "average_precision" in performance["realized"]
    assert 0 < pending["estimated_performance"]["average_precision"] <= 1
    estimate = pending["estimate"]
    assert estimate["reliable"] is False and estimate["checked_window"].startswith(str(NEXT.date()))
    low, high = estimate["intervals"]["average_precision"]
    assert low <= pending["estimated_performance"]["average_precision"] <= high
    assert {a["kind"] for a in pending["alerts"]} >= {"performance", "estimated_performance"}
    with project.store.engine.connect() as conn:
        kinds = conn.execute(select(tables.alerts.c.subject)).scalars().all()
    assert kinds.count("reliability") == 1

    control, control_replay = _project(tmp_path / "control", None)
    reports = [_replay_day(control, day, tmp_path) for day in _days(control_replay, CUT, CHANGE_DAY + 2)]
    # The same first day, seen by the model without the change: the derived inputs that moved.
    changed_report, changed_inputs = first_day
    movers = _real_movers(changed_inputs, _window_inputs(control, reports[1]))
    _flagged_on_the_movers(changed_report, movers, changed_inputs[1])
    assert [r.alerts for r in reports] == [[], [], [], []]
    assert all(r.estimate["reliable"] for r in reports)
    assert not any(r.concept_drift and r.concept_drift.drifted for r in reports)
    assert all(d.level == "ok" for r in reports for d in r.drift)
    assert all(r.performance.get("realized") for r in reports)  # judged every day, labels in
