"""POST /v1/models/{name}/forecast: schema, the same numbers as batch, logging, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from forecast_support import demand_lines, project_file
from loopml.actions import dispatch_once
from loopml.project import Project
from loopml.scoring.forecast import forecast_source, forecast_table

PROJECT = (
    project_file({"groups": ["UK"], "stock": "data/stock.csv"})
    + """
monitor: {window: 7d, min_labels: 1}
actions:
  endpoints:
    erp: {kind: sql, url: "sqlite:///ERP", table: reorders, mode: upsert, key: [item, week], create: true}
  rules:
    - name: reorder
      when: [{field: output.shortfall, op: ">", value: 0}]
      endpoint: erp
      payload: {item: "{inputs.item}", week: "{inputs.origin}", quantity: "{output.order_quantity}"}
"""
)


def _lines() -> pd.DataFrame:
    return demand_lines(seed=3)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    directory: Path = tmp_path_factory.mktemp("forecast") / "proj"
    (directory / "data").mkdir(parents=True)
    _lines().to_parquet(directory / "data" / "lines.parquet", index=False)
    stock = pd.DataFrame({"item": ["10001", "10002"], "group": ["UK", "UK"], "on_hand": [5, 10_000]})
    stock.to_csv(directory / "data" / "stock.csv", index=False)
    erp = (directory / "erp.db").resolve()
    (directory / "loopml.yaml").write_text(PROJECT.replace("ERP", str(erp)), encoding="utf-8")
    proj = Project.open(directory, environ={})
    proj.ingest()
    outcome = proj.train()
    assert outcome.promoted and outcome.version.signature["task"] == "forecast"
    yield proj
    proj.store.engine.dispose()


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(project.app()) as test_client:
        yield test_client


def test_forecast_steps_match_batch_and_are_logged(project: Project, client: TestClient) -> None:
    response = client.post("/v1/models/demand/forecast", json={"item": "10001", "horizon": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["group"] == "UK" and body["model_version"] == 1
    origin = pd.Timestamp(body["origin"])
    steps = body["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert [pd.Timestamp(s["period"]) for s in steps] == [origin + pd.Timedelta(weeks=h) for h in (1, 2, 3)]
    model = project.models.load()
    table = forecast_table(model, forecast_source(project.store, model))
    mine = table[(table["item"] == "10001") & (table["group"] == "UK")]
    np.testing.assert_allclose([s["forecast"] for s in steps], mine["forecast"].to_numpy(), rtol=1e-12)
    rest = client.post("/v1/models/demand/forecast", json={"item": "10001", "group": "rest", "horizon": 1})
    assert rest.status_code == 200 and len(rest.json()["steps"]) == 1
    labels = [{"prediction_id": s["prediction_id"], "label": s["forecast"] + 1} for s in steps]
    assert client.post("/v1/feedback", json=labels).json()["accepted"] == 3
    # The last step's shortfall against stock on hand (5) queued a reorder; delivering writes the row.
    assert dispatch_once(project.settings, project.store.engine, timeout=30) >= 1
    engine = create_engine(f"sqlite:///{project.settings.project_dir / 'erp.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT item, week, quantity FROM reorders")).all()
    engine.dispose()
    total = sum(s["forecast"] for s in steps)
    assert [tuple(r) for r in rows] == [("10001", pd.Timestamp(origin).isoformat(), int(np.ceil(total - 5)))]
    # The monitor joins the actuals to the logged steps: WAPE and MASE per week, with coverage.
    report = project.monitor.run().to_dict()
    weeks = {str(pd.Timestamp(w["window_start"]).date()): w for w in report["history"]}
    first, second = weeks[steps[0]["period"]], weeks[steps[1]["period"]]
    assert first["predictions"] == 2 and first["labels"] == 1 and first["label_coverage"] == 0.5
    actual, scale = steps[1]["forecast"] + 1, float(mine["mase_scale"].iloc[1])
    assert second["realized"]["wape"] == pytest.approx(1 / actual)
    assert second["realized"]["mase"] == pytest.approx(1 / scale)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"item": "10001", "horizon": 4}, "horizon"),  # beyond the model's horizon of 3
        ({"item": "10001", "horizon": 0}, "horizon"),
        ({"item": "10001", "horizon": "soon"}, "horizon"),
        ({"horizon": 2}, "item"),
        ({"item": "10001", "horizon": 2, "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, body: dict[str, object], field: str) -> None:
    response = client.post("/v1/models/demand/forecast", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


def test_unknown_series_and_model_are_404(client: TestClient) -> None:
    response = client.post("/v1/models/demand/forecast", json={"item": "99999", "horizon": 2})
    assert response.status_code == 404 and "99999" in response.json()["error"]["message"]
    assert client.post("/v1/models/other/forecast", json={"item": "10001"}).status_code == 404


def test_openapi_documents_the_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/v1/models/{name}/forecast"]["post"]
    schema = route["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:  # a named component, or the schema itself (the body is read by one JSON reader)
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"item", "group", "horizon"}
