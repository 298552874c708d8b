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
    out = project.predictions.predict_file(wanted, tmp_path / "f.parquet")
    table = pd.read_parquet(out.output)
    assert table[["item", "group", "horizon"]].values.tolist() == [
        ["10002", "UK", 1], ["10002", "UK", 2], ["10001", "rest", 1]
    ]  # fmt: skip
    everything = pd.read_parquet(project.predictions.predict_file(None, tmp_path / "all.parquet").output)
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
        project.predictions.predict_file(wanted, tmp_path / "f.parquet")
    with pytest.raises(InputError, match="leave out --dask"):
        project.predictions.predict_file(None, tmp_path / "g", dask="local")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n", "is empty"),
        ("semicolons.csv", b"item;group\n10001;UK\n", "delimiter looks like ';'"),
        ("corrupt.parquet", b"PAR1 not really parquet", "cannot read Parquet file"),
    ],
)
def test_bad_input_files_are_one_line_input_errors(
    project: Project, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    wanted = tmp_path / name
    wanted.write_bytes(content)
    with pytest.raises(InputError, match=message) as raised:
        project.predictions.predict_file(wanted, tmp_path / "f.parquet")
    assert str(wanted) in str(raised.value) and "--input" in str(raised.value)
    assert "\n" not in str(raised.value)
    result = CliRunner().invoke(
        app,
        ["predict", "--project", str(project.settings.project_dir), "--input", str(wanted),
         "-o", str(tmp_path / "g.csv")],
    )  # fmt: skip
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert message in result.output
    assert not (tmp_path / "g.csv").exists()


def test_a_series_listed_twice_is_answered_twice_as_once(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopml.batch.forecast as batch_forecast

    logged: list[list[dict[str, object]]] = []
    write = batch_forecast.write_predictions
    monkeypatch.setattr(
        batch_forecast,
        "write_predictions",
        lambda engine, records, **kw: (logged.append(records), write(engine, records, **kw))[1],
    )
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    pd.DataFrame({"item": ["10001"], "group": ["UK"]}).to_csv(once, index=False)
    pd.DataFrame({"item": ["10001", "10001"], "group": ["UK", "UK"]}).to_csv(twice, index=False)
    single = pd.read_csv(
        project.predictions.predict_file(once, tmp_path / "a.csv").output, dtype={"item": str}
    )
    double = pd.read_csv(
        project.predictions.predict_file(twice, tmp_path / "b.csv").output, dtype={"item": str}
    )
    steps = len(single)
    assert steps == 3 and len(double) == 2 * steps

    def answer(table: pd.DataFrame) -> pd.DataFrame:
        return table[["item", "group", "horizon", "forecast", "on_hand"]].reset_index(drop=True)

    pd.testing.assert_frame_equal(answer(double.iloc[:steps]), answer(single))
    pd.testing.assert_frame_equal(answer(double.iloc[steps:]), answer(single))
    outputs = [[{k: v for k, v in r["output"].items() if k != "prediction_id"} for r in rs] for rs in logged]
    first, second = outputs[1][:steps], outputs[1][steps:]
    assert first == second == outputs[0]  # running totals and shortfall per request, as the API's
    with TestClient(project.app()) as client:
        response = client.post(
            "/v1/models/demand/forecast", json={"item": "10001", "group": "UK", "horizon": 3}
        )
    assert response.status_code == 200, response.text
    running = np.cumsum([s["forecast"] for s in response.json()["steps"]])  # what the API logs
    assert [o["cumulative"] for o in second] == pytest.approx(running.tolist())
