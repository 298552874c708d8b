from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import func, select
from typer.testing import CliRunner

from loopml.cli import app
from loopml.examples import write_example
from loopml.project import Project
from loopml.store import tables

# The first replayed day: late enough that the 30-day window features of the training rows, the
# reference and the replayed days are all complete (before, they are still filling up, and their
# drift from the reference is real).
WARM = 45


def _project(root: Path, monitor: dict) -> Project:
    write_example("fraud", root, days=WARM + 10, regime_change_day=WARM)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(params={"n_estimators": 30}, bootstrap=0, report=False)
    config["monitor"] = monitor
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    project = Project.open(root)
    project.ingest()
    project.train()
    return project


def _score_day(project: Project, day: pd.DataFrame, folder: Path) -> pd.DataFrame:
    day.to_parquet(folder / "day.parquet", index=False)
    project.predictions.predict_file(folder / "day.parquet", folder / "scored.parquet")
    return pd.read_parquet(folder / "scored.parquet").merge(
        day[["transaction_id", "tx_fraud"]], on="transaction_id"
    )


@pytest.fixture(scope="module")
def replay_days(tmp_path_factory: pytest.TempPathFactory) -> list[pd.DataFrame]:
    root = tmp_path_factory.mktemp("replay")
    write_example("fraud", root, days=WARM + 10, regime_change_day=WARM)
    replay = pd.read_parquet(root / "data" / "replay.parquet")
    days = replay["tx_datetime"].dt.normalize()
    return [replay[days == d].reset_index(drop=True) for d in sorted(days.unique())[:3]]


def test_monitor_json_reports_performance_coverage_estimate_and_alerts(
    tmp_path: Path, replay_days: list[pd.DataFrame]
) -> None:
    floors = {
        "performance_floor": {"average_precision": 0.999},
        "estimated_floor": {"average_precision": 0.999},
    }
    monitor = {"window": "1d", "min_rows": 100, "min_labels": 5, "min_positives": 1, **floors}
    project = _project(tmp_path / "p", monitor)
    scored = _score_day(project, replay_days[0], tmp_path)
    labelled = scored.iloc[: len(scored) // 2]
    pd.DataFrame({"prediction_id": labelled["prediction_id"], "label": labelled["tx_fraud"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    runner = CliRunner()
    fed = runner.invoke(
        app, ["feedback", "--input", str(tmp_path / "labels.csv"), "-p", str(tmp_path / "p"), "--json"]
    )
    assert fed.exit_code == 0, fed.output
    assert json.loads(fed.stdout) == {"received": len(labelled), "accepted": len(labelled), "unknown_ids": 0}
    result = runner.invoke(app, ["monitor", "-p", str(tmp_path / "p"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"window", "drifted_features", "performance", "estimated_performance", "alerts"} <= set(report)
    assert report["performance"]["predictions"] == len(scored)
    assert report["performance"]["label_coverage"] == pytest.approx(len(labelled) / len(scored))
    assert "average_precision" in report["performance"]["realized"]
    assert 0 < report["estimated_performance"]["roc_auc"] <= 1
    assert {a["kind"] for a in report["alerts"]} == {"performance", "estimated_performance"}
    runner.invoke(app, ["monitor", "-p", str(tmp_path / "p"), "--json"])  # the same window again
    with project.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.alerts)).scalar_one() == 2


def test_no_alert_without_change_and_drift_when_amounts_jump(
    tmp_path: Path, replay_days: list[pd.DataFrame]
) -> None:
    project = _project(tmp_path / "p", {"window": "1d", "min_rows": 100})
    _score_day(project, replay_days[0], tmp_path)
    quiet = project.monitor.run()
    assert quiet.alerts == [] and quiet.drifted_features == []
    jumped = replay_days[1].assign(tx_amount=replay_days[1]["tx_amount"] * 4)
    _score_day(project, jumped, tmp_path)
    report = project.monitor.run()
    assert "tx_amount" in report.drifted_features
    assert [a["kind"] for a in report.alerts] == ["drift"]
    # A broken upstream: the card ids arrive remapped, so every card looks new. No request column
    # moves, but the card's window features do, and they are the inputs drift flags and ranks first.
    broken = replay_days[2].assign(customer_id=replay_days[2]["customer_id"] + 1_000_000)
    _score_day(project, broken, tmp_path)
    report = project.monitor.run()
    raw = set(broken.columns)
    assert not raw & set(report.drifted_features), report.drifted_features
    top = next(d for d in report.drift if d.column != "prediction")  # the scores moved too
    assert top.column.startswith("customer_id__tx_amount__") and top.level == "alert", top
    assert top.source in ("window", "derived") and top.importance is not None and top.importance > 0
    assert sum(d.column.startswith("customer_id__") for d in report.drift if d.level == "alert") >= 3


def test_feedback_for_unknown_ids_is_counted_not_stored(
    tmp_path: Path, replay_days: list[pd.DataFrame]
) -> None:
    project = _project(tmp_path / "p", {})
    pd.DataFrame({"prediction_id": ["nope"], "label": [1]}).to_parquet(tmp_path / "fb.parquet")
    assert project.predictions.feedback_file(tmp_path / "fb.parquet").to_dict() == {
        "received": 1,
        "accepted": 0,
        "unknown_ids": 1,
    }
    result = CliRunner().invoke(
        app, ["feedback", "--input", str(tmp_path / "missing.csv"), "-p", str(tmp_path / "p")]
    )
    assert result.exit_code == 4 and "does not exist" in result.stderr
