"""The gate with ``train.group_column``: champion and challenger judged on groups neither trained on;
a maintenance project retrains both its models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.project import Project
from loopml.tasks import group_in_holdout, time_split
from loopml.validate import load_snapshot
from maintenance_support import maintenance_project, without_quality_report

PROJECT = """
name: grouped
task: regression
target: y
source: {kind: parquet, path: data/rows.parquet}
features: {drop: []}
train:
  group_column: unit
  holdout_fraction: 0.25
  bootstrap: 0
  report: false
  params: {n_estimators: 15}
"""


def _rows(units: range, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 30 * len(units)
    unit = np.repeat(np.asarray(units), 30)
    bias = rng.normal(0, 3, len(units)).repeat(30)  # each unit its own offset: memorising it pays
    x = rng.normal(size=n)
    return pd.DataFrame({"unit": unit, "x": x, "z": rng.normal(size=n), "y": 2 * x + bias})


def test_a_group_keeps_its_side_as_data_grows() -> None:
    small, large = np.arange(40), np.arange(100)
    assert (group_in_holdout(small, 0.25, 0) == group_in_holdout(large, 0.25, 0)[:40]).all()
    frame = pd.DataFrame(index=range(200))
    _, holdout = time_split(frame, None, 0.25, seed=0, groups=np.repeat(np.arange(40), 5))
    assert set(np.repeat(np.arange(40), 5)[holdout]) == set(small[group_in_holdout(small, 0.25, 0)])
    assert len(time_split(frame.iloc[:10], None, 0.01, groups=np.repeat([1, 2], 5))[1]) == 5  # never empty


@pytest.mark.parametrize("challenger_seed", [42, 1], ids=["same split", "changed seed"])
def test_the_champion_is_judged_only_on_groups_it_never_trained_on(
    tmp_path: Path, challenger_seed: int
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "loopml.yaml").write_text(PROJECT, encoding="utf-8")
    _rows(range(40), 1).to_parquet(tmp_path / "data" / "rows.parquet", index=False)
    first = Project.open(tmp_path, environ={})
    with without_quality_report():
        first.ingest()
        champion = first.train().version
        assert champion.metrics["split"] == {"group_column": "unit", "holdout_fraction": 0.25, "seed": 42}
        _, old = load_snapshot(first.store, "grouped")
        units = old["unit"].unique()
        trained_on = set(units[~group_in_holdout(units, 0.25, 42)])
        pd.concat([old, _rows(range(40, 60), 2)]).to_parquet(tmp_path / "data" / "rows.parquet", index=False)
        later = Project.open(tmp_path, environ={"LOOPML_TRAIN__SEED": str(challenger_seed)})
        later.ingest()
        challenger = later.train().version
    compared = challenger.metrics["champion"]
    _, rows = load_snapshot(later.store, "grouped")
    holdout = rows.iloc[time_split(rows, None, 0.25, seed=challenger_seed, groups=rows["unit"].to_numpy())[1]]
    fair = holdout[group_in_holdout(holdout["unit"], 0.25, 42)]  # on the champion's holdout side
    assert compared["rows"] == len(fair) > 0 and not set(fair["unit"]) & trained_on
    if challenger_seed == 42:  # the same (default) split: no holdout group was on its training side
        assert len(fair) == len(holdout)
    else:  # a changed seed puts some of the champion's training units in the holdout: left out
        assert len(fair) < len(holdout)

    def rmse(version: int) -> float:
        scores = later.load_model(version).predict_frame(fair, observe=False)
        return float(np.sqrt(np.mean((scores - fair["y"].to_numpy()) ** 2)))

    assert compared["score"] == pytest.approx(rmse(champion.version))
    assert compared["challenger_score"] == pytest.approx(rmse(challenger.version))


def test_a_maintenance_project_trains_and_retrains_both_models(tmp_path: Path) -> None:
    proj, outcome = maintenance_project(tmp_path, trees=15, engines=8, hold_back=2)
    assert [outcome.version.name, *(c.version.name for c in outcome.companions)] == [
        "maintenance",
        "maintenance-failure",
    ]
    with without_quality_report():
        assert all(c.promoted for c in outcome.companions)
        data = tmp_path / "data"
        later = pd.read_parquet(data / "later_cycles.parquet")
        assert sorted(later["engine"].unique()) == [7, 8]
        arrived = pd.concat([pd.read_parquet(data / "cycles.parquet"), later])
        arrived.to_parquet(data / "cycles.parquet", index=False)
        results = proj.retrain(force=True)
    assert [r.status in ("promoted", "rejected") for r in results] == [True, True]
    assert [r.challenger_version for r in results] == [2, 2]
    assert all(r.reasons for r in results)  # the reason it was promoted or rejected
    _, failure_rows = load_snapshot(proj.store, "maintenance-failure")
    assert failure_rows["engine"].nunique() == 8  # the cycle ingested the new engines for both models
