"""The C-MAPSS FD001 example: shipped data, labels, the grouped split and the PHM08 evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.config import MaintenanceConfig, load_settings
from loopml.examples import write_example
from loopml.examples.maintenance import (
    evaluate_last_cycle,
    label_trajectories,
    last_cycles,
    load_fd001,
    phm08_score,
)
from loopml.tasks import time_split


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("maintenance")
    write_example("maintenance", directory, engines=6)
    return directory


def test_the_shipped_data_is_nasa_fd001() -> None:
    train, test = load_fd001("train"), load_fd001("test")
    assert (len(train), len(test)) == (20631, 13096)  # the line counts of train/test_FD001.txt
    assert train["engine"].nunique() == test["engine"].nunique() == 100
    assert [train.at[0, "s2"], train.at[0, "s9"], train.at[0, "s21"]] == [
        641.82,
        9046.19,
        23.4190,
    ]  # first line


def test_write_data_labels_each_cycle(project: Path) -> None:
    cycles = pd.read_parquet(project / "data" / "cycles.parquet")
    engine1 = cycles[cycles["engine"] == 1]  # 192 cycles run to failure
    assert len(engine1) == 192
    assert engine1["rul"].iloc[0] == 125  # 191 left, capped
    assert engine1["rul"].tolist()[-3:] == [2, 1, 0]
    assert engine1["fails_within_30"].sum() == 31  # 30, 29, ..., 0 cycles left
    assert engine1.loc[engine1["rul"] == 31, "fails_within_30"].tolist() == [0]
    truth = pd.read_csv(project / "data" / "test_rul.csv")
    assert truth["rul"].tolist() == [112, 98, 69, 82, 91, 93]  # RUL_FD001.txt, first lines
    test = pd.read_parquet(project / "data" / "test_cycles.parquet")
    assert "rul" not in test.columns and sorted(test["engine"].unique()) == [1, 2, 3, 4, 5, 6]


def test_labels_for_trajectories_cut_before_failure() -> None:
    rows = pd.DataFrame({"engine": [7, 7, 8], "cycle": [1, 2, 1]})
    config = MaintenanceConfig(rul_cap=100, failure_within=3)
    out = label_trajectories(rows, config, end_rul=pd.Series({7: 2, 8: 200}))
    assert out["rul"].tolist() == [3, 2, 100]
    assert out["fails_within_30"].tolist() == [1, 1, 0]


def test_grouped_split_puts_each_engine_on_one_side(project: Path) -> None:
    settings = load_settings(project)
    cycles = pd.read_parquet(project / "data" / "cycles.parquet")
    groups = cycles[settings.train.group_column].to_numpy()
    train, holdout = time_split(cycles, None, settings.train.holdout_fraction, None, 0, groups)
    assert len(train) + len(holdout) == len(cycles)
    assert not set(groups[train]) & set(groups[holdout])
    assert set(groups[holdout])


def test_phm08_score_and_last_cycle_evaluation_by_hand() -> None:
    # d = -13 (early): e^1 - 1; d = +10 (late): e^1 - 1; d = 0: 0
    assert phm08_score([87, 110, 50], [100, 100, 50]) == pytest.approx(2 * (math.e - 1))
    late, early = phm08_score([110], [100]), phm08_score([90], [100])
    assert late > early  # a late warning costs more than an early one
    figures = evaluate_last_cycle([125, 20], [150, 30], rul_cap=125)  # 150 is capped to 125
    assert figures["test_rmse"] == pytest.approx(np.sqrt((0 + 100) / 2))
    assert figures["phm08_score"] == pytest.approx(np.exp(10 / 13) - 1)
    frame = pd.DataFrame({"engine": [2, 1, 1], "cycle": [5, 2, 1], "x": [3, 2, 1]})
    assert last_cycles(frame)[["engine", "x"]].values.tolist() == [[1, 2], [2, 3]]
