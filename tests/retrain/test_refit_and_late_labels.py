"""The loop's refit (the promoted challenger learns the gate's window too, and a later gate judges it
only on newer rows) and labels sent as feedback reaching the served model's window history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopml.examples import write_example
from loopml.examples.fraud import simulate
from loopml.project import Project
from loopml.retrain import run_cycle
from loopml.scoring import load_model
from loopml.store import record_feedback


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return simulate(days=40, regime_change_day=None, n_customers=300, n_terminals=1_500)


def _project(root: Path, rows: pd.DataFrame) -> Project:
    write_example("fraud", root, days=5, regime_change_day=None, n_customers=50, n_terminals=100)
    rows.to_parquet(root / "data" / "transactions.parquet", index=False)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(bootstrap=0, report=False, params={"n_estimators": 30, "n_jobs": 1})
    config["source"]["watermark"] = "tx_datetime"
    config["retrain"] = {"cooldown": "1s"}
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    proj = Project.open(root)
    proj.ingest()
    proj.train()
    return proj


def test_train_refits_and_a_gate_never_judges_on_rows_the_champion_learned(
    tmp_path: Path, events: pd.DataFrame
) -> None:
    days, times = events["tx_time_days"], events["tx_datetime"]
    proj = _project(tmp_path / "p", events[days < 34])
    v1 = proj.models.get(1).metrics
    # `loopml train` refits on every row once judged, as a cycle does: the judged fit's scores,
    # the refit's rows.
    assert v1["refit"]["rows"] == v1["rows_train"] + v1["rows_holdout"] == int((days < 34).sum())
    assert pd.Timestamp(v1["cutoff"]) == pd.Timestamp(v1["refit"]["through"]) == times[days < 34].max()
    # no row newer than v1's: nothing fair to judge
    waiting = run_cycle(proj.settings, proj.store, force=True)
    assert waiting.status == "waiting" and not waiting.ran and waiting.challenger_version is None
    assert "0 rows are newer than everything champion v1 learned from" in waiting.skipped_because
    # Six more days: the gate's rows are the newest half of them, the challenger learned the older half.
    events.to_parquet(tmp_path / "p" / "data" / "transactions.parquet", index=False)
    later = run_cycle(proj.settings, proj.store, force=True)
    v2 = load_model(proj.store, proj.name, later.challenger_version).version.metrics
    champion, newer = v2["champion"], int((times > pd.Timestamp(v1["cutoff"])).sum())
    assert champion["version"] == 1 and champion["rows"] == v2["rows_holdout"] == newer // 2
    cutoff = pd.Timestamp(champion["cutoff"])
    assert pd.Timestamp(champion["compared_from"]) > cutoff == times[days < 34].max()
    assert pd.Timestamp(v2["holdout_start"]) > pd.Timestamp(v1["cutoff"])  # no row v1 learned from
    assert pd.Timestamp(v2["cutoff"]) == times.max() and v2["refit"]["rows"] == len(events)
    assert {"low", "high", "mean", "point"} <= set(champion["gain"])  # both judged on the same rows
    judged = [c["detail"] for c in later.gate if c["check"] == "beats_champion"]
    assert judged and "rows neither learned from" in judged[0]


def test_labels_sent_as_feedback_reach_the_served_window_history(
    tmp_path: Path, events: pd.DataFrame
) -> None:
    days = events["tx_time_days"]
    proj = _project(tmp_path / "p", events[days < 20])
    served = proj.models.load()  # loaded once, as the API holds it
    scored = events[days.between(20, 29)]
    proj.predictions.predict_file(
        _parquet(tmp_path, scored.drop(columns=["tx_fraud", "tx_fraud_scenario"])), tmp_path / "o.parquet"
    )
    later = events[days.between(36, 39)].drop(columns=["tx_fraud", "tx_fraud_scenario"])
    risk = ["terminal_id__tx_fraud__count_1d", "terminal_id__tx_fraud__count_7d"]  # back to days 22-31
    stale = served.features(served.coerce(later))[risk]
    assert (stale == 0).all().all()  # days 20-29 scored, their labels unknown: windows see nothing
    out = pd.read_parquet(tmp_path / "o.parquet").merge(scored[["transaction_id", "tx_fraud"]])
    record_feedback(
        proj.store.engine,
        [
            {"prediction_id": p, "label": int(y)}
            for p, y in zip(out["prediction_id"], out["tx_fraud"], strict=True)
        ],
    )
    assert served.learn_feedback(proj.store) == len(out)
    assert served.learn_feedback(proj.store) == 0  # nothing new
    learnt = served.features(served.coerce(later))[risk]
    assert (learnt > 0).any().all()
    fresh = proj.models.load()  # a model loaded now learns the same labels at start-up
    pd.testing.assert_frame_equal(fresh.features(fresh.coerce(later))[risk], learnt)


def test_a_model_loaded_after_much_feedback_reads_only_the_newest(
    tmp_path: Path, events: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feedback read at load is bounded like the history's logged inputs (the newest rows)."""
    import loopml.scoring.state as loaded

    days = events["tx_time_days"]
    proj = _project(tmp_path / "p", events[days < 20])
    scored = events[days.between(20, 24)]
    proj.predictions.predict_file(
        _parquet(tmp_path, scored.drop(columns=["tx_fraud", "tx_fraud_scenario"])), tmp_path / "o.parquet"
    )
    out = pd.read_parquet(tmp_path / "o.parquet").merge(scored[["transaction_id", "tx_fraud"]])
    labels = [{"prediction_id": p, "label": 1} for p in out["prediction_id"]]
    record_feedback(proj.store.engine, labels)
    monkeypatch.setattr(loaded, "_HISTORY_LOG_LIMIT", 25)
    model = load_model(proj.store, proj.name, history=False)
    history = loaded.load_history(proj.store, model.version, model.windows)
    model = type(model)(model.version, model.pipeline, loaded.WindowState(history))
    assert model.learn_feedback(proj.store) == 25  # the newest 25 of the labels, not all of them
    monkeypatch.setattr(loaded, "_HISTORY_LOG_LIMIT", 2)  # later reads take every newer row
    record_feedback(proj.store.engine, labels[-3:] + labels[:3])  # 3 already learnt, 3 not
    assert model.learn_feedback(proj.store) == 3


def _parquet(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "in.parquet"
    rows.to_parquet(path, index=False)
    return path
