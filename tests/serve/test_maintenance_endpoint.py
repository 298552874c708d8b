"""``POST /v1/models/{name}/rul``: an engine's recent readings in, RUL and failure risk out.

One small maintenance project (12 training engines, 30 trees) trained once for the module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loopml.config import failure_settings
from loopml.project import Project
from loopml.serve import create_app
from loopml.serve.deps import server_state
from loopml.store import tables
from maintenance_support import maintenance_project

ROUTE = "/v1/models/maintenance/rul"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    directory = tmp_path_factory.mktemp("maintenance-api")
    proj, outcome = maintenance_project(directory, trees=30, engines=12)
    # both models: the RUL and, beside it, the failure model
    assert [c.version.name for c in outcome.companions] == [failure_settings(proj.settings).name]
    return proj


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(create_app(project.settings, project.store)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def test_cycles(project: Project) -> pd.DataFrame:
    return pd.read_parquet(project.settings.project_dir / "data" / "test_cycles.parquet")


def _body(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "cycles": [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
            for r in frame.to_dict("records")
        ]
    }


def _flush(client: TestClient) -> None:
    """Wait until the API's prediction log has written what it acknowledged."""
    app: Any = client.app
    writer = server_state(app).runtime.prediction_log
    assert writer is not None
    writer.flush()


def _engine(test_cycles: pd.DataFrame, engine: int) -> pd.DataFrame:
    return test_cycles[test_cycles["engine"] == engine].sort_values("cycle")


def test_answers_rul_and_failure_risk_as_batch_scoring_does(
    client: TestClient, project: Project, test_cycles: pd.DataFrame
) -> None:
    engine = _engine(test_cycles, 3)  # 126 cycles
    response = client.post(ROUTE, json=_body(engine.tail(30)))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["unit"] == 3 and answer["cycle"] == 126 and answer["failure_within"] == 30
    assert 0 <= answer["rul"] <= 125 and 0 <= answer["failure_probability"] <= 1
    assert answer["alert"] == (answer["failure_probability"] >= 0.5)
    assert answer["failure_model"] == "maintenance-failure"
    whole = project.models.load().predict_frame(engine, observe=False)[-1]  # every cycle, as in batch
    assert answer["rul"] == min(max(float(whole), 0.0), 125.0)
    _flush(client)
    p = tables.predictions
    with project.store.engine.connect() as conn:
        logged = conn.execute(
            select(p.c.model_name, p.c.score, p.c.inputs).where(p.c.id.in_(answer["prediction_ids"].values()))
        ).all()
    assert {row.model_name for row in logged} == {"maintenance", "maintenance-failure"}
    assert all(row.inputs["cycle"] == 126 for row in logged)


def test_a_young_engine_needs_every_cycle_since_the_first(
    client: TestClient, test_cycles: pd.DataFrame
) -> None:
    engine = _engine(test_cycles, 1)  # 31 cycles
    assert client.post(ROUTE, json=_body(engine.head(12))).status_code == 200
    response = client.post(ROUTE, json=_body(engine.iloc[5:17]))  # cycles 6..17: the first five missing
    assert response.status_code == 422
    assert "field 'cycles'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda rows: rows[3].pop("s7"), "cycles[3].s7"),
        (lambda rows: rows[4].update(s9=math.nan), "cycles[4].s9"),
        (lambda rows: rows[4].update(s9=None), "cycles[4].s9"),
        (lambda rows: rows[5].update(s2="hot"), "cycles[5].s2"),
        (lambda rows: rows[6].update(cycle=rows[6]["cycle"] + 5), "cycles[6].cycle"),
        (lambda rows: rows[7].update(engine=99), "cycles[7].engine"),
    ],
    ids=["missing sensor", "NaN", "null", "text", "gap", "two engines"],
)
def test_bad_readings_are_a_422_naming_the_field(
    client: TestClient, test_cycles: pd.DataFrame, change: Any, field: str
) -> None:
    body = _body(_engine(test_cycles, 2).tail(30))
    change(body["cycles"])
    # json.dumps writes NaN as the bare literal NaN, as many clients do
    response = client.post(ROUTE, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert f"field '{field}'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"cycles": []}, "cycles"), ({"readings": []}, "cycles"), ([], "body"), ({"cycles": "x"}, "cycles")],
)
def test_a_malformed_body_is_a_422(client: TestClient, body: Any, field: str) -> None:
    response = client.post(ROUTE, json=body)
    assert response.status_code == 422
    assert f"field '{field}" in response.json()["error"]["message"]


def test_too_many_readings_are_a_413(client: TestClient, project: Project, test_cycles: pd.DataFrame) -> None:
    limit = project.settings.serve.max_batch
    body = _body(_engine(test_cycles, 3))
    body["cycles"] = (body["cycles"] * (limit // len(body["cycles"]) + 1))[: limit + 1]
    response = client.post(ROUTE, json=body)
    assert response.status_code == 413 and "serve.max_batch" in response.json()["error"]["message"]


def test_other_projects_and_names_are_a_404(client: TestClient, project: Project) -> None:
    assert client.post("/v1/models/other/rul", json={"cycles": [{}]}).status_code == 404
    plain = project.settings.model_copy(update={"maintenance": None})
    with TestClient(create_app(plain, project.store)) as other:
        assert other.post(ROUTE, json={"cycles": [{}]}).status_code == 404


def test_the_route_is_documented(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    spec = document["paths"]["/v1/models/{name}/rul"]["post"]
    assert "cycles" in spec["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert spec["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("RulPrediction")
    assert "failure_probability" in document["components"]["schemas"]["RulPrediction"]["properties"]


def test_a_high_failure_risk_opens_one_work_order(client: TestClient, project: Project) -> None:
    """The example's rule sends failure predictions >= 0.5 to its SQL work-order table, once per engine."""
    import sqlalchemy as sa

    from loopml.actions import dispatch_once

    cycles = pd.read_parquet(project.settings.project_dir / "data" / "cycles.parquet")
    failing = cycles[cycles["engine"] == 1].drop(columns=["rul", "fails_within_30"])  # its last cycle fails
    answers = [client.post(ROUTE, json=_body(failing.tail(30))).json() for _ in range(2)]
    assert all(a["alert"] for a in answers)
    _flush(client)
    dispatch_once(project.settings, project.store.engine, timeout=30)
    database = sa.create_engine(f"sqlite:///{project.settings.project_dir / 'work_orders.db'}")
    with database.connect() as conn:
        orders = conn.execute(
            sa.text("SELECT engine, cycle, failure_probability, rul FROM work_orders")
        ).all()
    database.dispose()
    assert [(o.engine, o.cycle) for o in orders] == [(1, 192)]  # the repeat was deduplicated
    assert orders[0].failure_probability == answers[0]["failure_probability"]
    assert orders[0].rul == answers[0]["rul"]


@pytest.mark.parametrize(
    "body",
    [b"[" * 2_000, b'{"cycles": ' + b"[" * 900 + b"NaN" + b"]" * 900 + b"}"],
    ids=["2000-brackets", "900-deep-with-nan"],
)
def test_deep_nesting_is_a_422_not_a_500(client: TestClient, body: bytes) -> None:
    # the issue: 2,000 nested '[' gave a 500 (RecursionError) on this route
    response = client.post(ROUTE, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "nests deeper than 64 levels" in response.json()["error"]["message"]
