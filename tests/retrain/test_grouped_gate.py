"""The gate with ``train.group_column``: champion and challenger judged on groups neither trained on;
a maintenance project retrains both its models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.config import GateConfig
from loopml.project import Project
from loopml.retrain import gate
from loopml.tasks import crossed_group, group_in_holdout, group_sides, time_split
from loopml.train.compare import _unseen_groups
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
        scores = later.models.load(version).predict_frame(fair, observe=False)
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
        results = proj.retrain.run(force=True)
    assert [r.status in ("promoted", "rejected") for r in results] == [True, True]
    assert [r.challenger_version for r in results] == [2, 2]
    assert all(r.reasons for r in results)  # the reason it was promoted or rejected
    _, failure_rows = load_snapshot(proj.store, "maintenance-failure")
    assert failure_rows["engine"].nunique() == 8  # the cycle ingested the new engines for both models


def _four_units(tmp_path: Path, seed: int, fraction: float = 0.25, extra: str = "") -> Project:
    """A project of 4 units x 30 rows (one segment value, ``band=a``), its snapshot ingested."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "loopml.yaml").write_text(PROJECT + extra, encoding="utf-8")
    _rows(range(4), 3).assign(band="a").to_parquet(tmp_path / "data" / "rows.parquet", index=False)
    return _reopen(tmp_path, seed, fraction)


def _reopen(tmp_path: Path, seed: int, fraction: float) -> Project:
    environ = {"LOOPML_TRAIN__SEED": str(seed), "LOOPML_TRAIN__HOLDOUT_FRACTION": str(fraction)}
    return Project.open(tmp_path, environ=environ)


def test_a_unit_moved_into_a_tiny_holdout_still_judges_the_champion(tmp_path: Path) -> None:
    units = np.arange(4)
    assert not group_in_holdout(units, 0.25, 0).any()  # seed 0: the split moves one unit into the holdout
    proj = _four_units(tmp_path, seed=0)
    with without_quality_report():
        proj.ingest()
        champion = proj.train().version
        challenger = proj.train().version
    assert champion.metrics["split"]["crossed"] == "2"
    _, rows = load_snapshot(proj.store, "grouped")
    holdout = time_split(rows, None, 0.25, seed=0, groups=rows["unit"].to_numpy())[1]
    assert set(rows["unit"].iloc[holdout]) == {2}
    compared = challenger.metrics["champion"]
    assert compared is not None and compared["version"] == champion.version and compared["rows"] == 30
    assert compared["challenger_score"] == pytest.approx(challenger.metrics["score"])


def test_a_unit_moved_out_of_the_holdout_never_judges_the_champion() -> None:
    units = np.arange(4)
    assert group_in_holdout(units, 0.6, 17).all()  # every unit hashes in: the split moves one out
    rows = np.repeat(units, 3)
    train, _ = time_split(pd.DataFrame(index=range(12)), None, 0.6, seed=17, groups=rows)
    assert set(rows[train]) == {0}
    split = {"group_column": "unit", "holdout_fraction": 0.6, "seed": 17}
    holdout = pd.DataFrame({"unit": units})  # a later challenger's holdout, unit 0 in it
    assert crossed_group(rows, 0.6, 17) == "0"  # what the split records as metrics["split"]["crossed"]
    recorded = {**split, "crossed": "0"}
    assert _unseen_groups(holdout, {"split": recorded}).tolist() == [False, True, True, True]
    assert group_sides(units, 0.6, 17).tolist() == [True] * 4  # an old record (no "crossed"): as before
    assert _unseen_groups(holdout, {"split": split}).all()
    assert crossed_group(rows, 0.5, 17) is None  # no crossing


def test_segments_compare_the_challenger_on_the_champions_rows(tmp_path: Path) -> None:
    proj = _four_units(tmp_path, seed=0, extra="  segments: [band]\n")
    with without_quality_report():
        proj.ingest()
        champion = proj.train().version  # held out unit 2 (moved in)
        challenger = _reopen(tmp_path, seed=2, fraction=0.25).train().version  # holds out units 0 and 2
    assert challenger.metrics["segments"]["band"][0]["rows"] == 60
    compared = challenger.metrics["champion"]
    assert compared["version"] == champion.version and compared["rows"] == 30
    [mine], [theirs] = compared["challenger_segments"]["band"], compared["segments"]["band"]
    assert mine["rows"] == theirs["rows"] == 30
    assert mine["rmse"] == pytest.approx(compared["challenger_score"])
    assert theirs["rmse"] == pytest.approx(compared["score"])
    checks = {c["check"]: c for c in gate(challenger.metrics, GateConfig()).checks}
    assert (
        checks["segment band=a"]["detail"] == f"band=a: rmse {mine['rmse']:.4f} against {theirs['rmse']:.4f}"
    )


def test_the_gate_takes_the_challengers_segments_on_the_champions_rows() -> None:
    metrics = {
        "metric": "rmse",
        "greater_is_better": False,
        "score": 1.0,
        "baseline_score": 2.0,
        "segments": {"band": [{"value": "a", "rows": 60, "rmse": 3.0}]},  # the full holdout
        "champion": {
            "version": 1,
            "score": 1.1,
            "challenger_score": 1.0,
            "rows": 30,
            "segments": {"band": [{"value": "a", "rows": 30, "rmse": 1.1}]},
            "challenger_segments": {"band": [{"value": "a", "rows": 30, "rmse": 1.0}]},
        },
    }
    result = gate(metrics, GateConfig())
    assert result.passed, result.reasons
    del metrics["champion"]["challenger_segments"]  # an older record: the full holdout's segments
    assert "band=a: rmse 3.0000 against 1.1000" in gate(metrics, GateConfig()).reasons
