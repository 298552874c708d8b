"""``loopml predict`` on a forecast model: batch forecasts equal to the endpoint's, logged like them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from forecast_support import forecast_project, project_file
from loopml.cli import app
from loopml.errors import InputError
from loopml.monitor import load_predictions
from loopml.project import Project

PROJECT = project_file({"groups": ["UK"]})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    proj = forecast_project(tmp_path_factory.mktemp("forecast-batch"), PROJECT)
    yield proj
    proj.store.engine.dispose()


def test_every_series_every_step_by_default_equal_to_the_api(project: Project, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["predict", "--project", str(project.settings.project_dir), "-o", str(tmp_path / "f.csv"), "--json"],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "f.csv", dtype={"item": str})
    assert json.loads(result.stdout)["rows"] == len(table) > 0
    assert set(table["horizon"]) == {1, 2, 3} and table["prediction_id"].is_unique
    with TestClient(project.app()) as client:
        for (item, group), rows in table.groupby(["item", "group"]):
            response = client.post(
                "/v1/models/demand/forecast", json={"item": item, "group": group, "horizon": 3}
            )
            assert response.status_code == 200, response.text
            api = [s["forecast"] for s in response.json()["steps"]]
            assert api == rows.sort_values("horizon")["forecast"].tolist()
    logged = load_predictions(project.store.engine, "demand")
    batch = logged[logged["prediction_id"].isin(table["prediction_id"])]
    assert len(batch) == len(table)  # logged as the endpoint logs, so actual demand can be fed back
    assert {"item", "group", "period", "horizon"} <= set(batch["inputs"].iloc[0])


def test_the_listed_series_and_horizons(project: Project, tmp_path: Path) -> None:
    wanted = tmp_path / "series.parquet"
    pd.DataFrame({"item": ["10002", "10001"], "group": [None, "rest"], "horizon": [2, 1]}).to_parquet(wanted)
    out = project.predict_file(wanted, tmp_path / "f.parquet")
    table = pd.read_parquet(out.output)
    assert table[["item", "group", "horizon"]].values.tolist() == [
        ["10002", "UK", 1], ["10002", "UK", 2], ["10001", "rest", 1]
    ]  # fmt: skip
    everything = pd.read_parquet(project.predict_file(None, tmp_path / "all.parquet").output)
    merged = table.merge(everything, on=["item", "group", "horizon"], suffixes=("", "_all"))
    np.testing.assert_array_equal(merged["forecast"], merged["forecast_all"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"item": ["NOPE"]}, "row 1: series item 'NOPE'"),
        ({"item": ["10001"], "horizon": [9]}, "row 1: field 'horizon'"),
        ({"product": ["10001"]}, "needs an 'item' column"),
    ],
)
def test_bad_series_lists_are_one_line_errors(
    project: Project, tmp_path: Path, rows: dict[str, list[object]], message: str
) -> None:
    wanted = tmp_path / "series.csv"
    pd.DataFrame(rows).to_csv(wanted, index=False)
    with pytest.raises(InputError, match=message):
        project.predict_file(wanted, tmp_path / "f.parquet")
    with pytest.raises(InputError, match="leave out --dask"):
        project.predict_file(None, tmp_path / "g", dask="local")
