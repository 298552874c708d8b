"""The Open Inference Protocol (KServe v2) REST surface: metadata, health, infer (same scores as /v1)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loopml.project import Project
from loopml.store import tables

INFER = "/v2/models/fraud/infer"
_entities = itertools.count(6_000_000)


@pytest.fixture
def client(api_project: Project) -> Iterator[TestClient]:
    with TestClient(api_project.app()) as test_client:
        yield test_client


def columns(n: int, amounts: list[Any] | None = None, **override: Any) -> list[dict[str, Any]]:
    """v2 input tensors for ``n`` rows, each row with a card and a terminal of its own."""
    ids = [next(_entities) for _ in range(n)]
    tensors = {
        "transaction_id": {"datatype": "INT64", "data": ids},
        "customer_id": {"datatype": "INT64", "data": ids},
        "terminal_id": {"datatype": "INT64", "data": ids},
        "tx_datetime": {"datatype": "BYTES", "data": [f"2026-01-2{i % 9}T0{i % 9}:15:00" for i in range(n)]},
        "tx_amount": {"datatype": "FP64", "data": amounts or [12.5 + 40 * i for i in range(n)]},
    }
    for name, change in override.items():
        tensors[name] = {**tensors[name], **change} if change is not None else None  # type: ignore[assignment]
    return [{"name": k, "shape": [n], **v} for k, v in tensors.items() if v is not None]


def rows_of(tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    n = tensors[0]["shape"][0]
    return [{t["name"]: t["data"][i] for t in tensors} for i in range(n)]


def test_server_health_and_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "loopml" and isinstance(meta["version"], str)
    assert meta["extensions"] == ["binary_tensor_data"]
    model_ready = client.get("/v2/models/fraud/ready")
    assert model_ready.status_code == 200 and model_ready.json() == {"name": "fraud", "ready": True}
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_model_metadata_types_come_from_the_contract(client: TestClient) -> None:
    meta = client.get("/v2/models/fraud").json()
    assert meta["name"] == "fraud" and meta["versions"] == ["1"] and meta["platform"] == "loopml"
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["inputs"]}
    assert inputs == {
        "tx_datetime": ("BYTES", [-1]),
        "tx_amount": ("FP64", [-1]),
        "customer_id": ("INT64", [-1]),
        "terminal_id": ("INT64", [-1]),
    }
    assert {t["name"]: t["datatype"] for t in meta["outputs"]} == {
        "score": "FP64",
        "label": "INT64",
        "prediction_id": "BYTES",
    }
    assert client.get("/v2/models/nope").status_code == 404


def test_infer_gives_the_v1_scores_and_logs_them(api_project: Project) -> None:
    tensors = columns(4)
    with TestClient(api_project.app()) as client:  # leaving it drains the prediction log
        response = client.post(INFER, json={"id": "req-1", "inputs": tensors})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("fraud", "1", "req-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["score"]["datatype"] == "FP64" and outputs["score"]["shape"] == [4]
    # Each row's id, echoed (the transaction_id input, as INT64).
    assert outputs["transaction_id"]["data"] == tensors[0]["data"]
    assert outputs["transaction_id"]["datatype"] == "INT64"
    assert outputs["label"]["data"] == [int(s >= 0.5) for s in outputs["score"]["data"]]
    # The same rows through /v1 (their own entities again, so the window history is the same).
    model = api_project.models.load()
    expected = model.predict_records(rows_of(tensors), observe=False)
    assert outputs["score"]["data"] == [float(s) for s in expected]
    ids = outputs["prediction_id"]["data"]
    with api_project.store.engine.connect() as conn:
        logged = conn.execute(select(tables.predictions).where(tables.predictions.c.id.in_(ids))).fetchall()
    assert {r.id for r in logged} == set(ids)
    assert all(r.origin == "api" and r.model_version == 1 for r in logged)


def test_nested_shape_and_requested_outputs(client: TestClient) -> None:
    tensors = columns(2)
    for t in tensors:
        t["shape"], t["data"] = [2, 1], [[v] for v in t["data"]]
    body = {"inputs": tensors, "outputs": [{"name": "score"}]}
    response = client.post(INFER, json=body)
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["score"]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        pytest.param({"tx_amount": {"datatype": "BYTES"}}, 400, "inputs[4].datatype", id="wrong-datatype"),
        pytest.param({"tx_amount": {"data": [1.0, "abc"]}}, 400, "inputs.tx_amount.data[1]", id="bad-value"),
        pytest.param({"tx_amount": {"data": [1.0, True]}}, 400, "inputs.tx_amount.data[1]", id="bool-value"),
        pytest.param(
            {"transaction_id": {"data": [1, "../../etc/passwd"]}},
            400,
            "inputs.transaction_id.data[1]",
            id="id-as-text",
        ),
        pytest.param(
            {"tx_datetime": {"data": ["2026-01-01", 1700000000]}},
            400,
            "inputs.tx_datetime.data[1]",
            id="epoch",
        ),
        pytest.param(
            {"tx_amount": {"data": [1.0, -5.0]}}, 400, "inputs.tx_amount.data[1]", id="out-of-range"
        ),
        pytest.param({"tx_amount": {"data": [1.0, None]}}, 400, "inputs.tx_amount.data[1]", id="null"),
        pytest.param({"tx_amount": None}, 400, "inputs", id="missing-input"),
        pytest.param({"tx_amount": {"shape": [3]}}, 400, "inputs[4].shape", id="shape-mismatch"),
        pytest.param({"tx_amount": {"shape": [1, 2]}}, 400, "inputs[4].shape", id="two-columns"),
        pytest.param(
            {"tx_datetime": {"data": ["x", "2026-01-01"]}}, 400, "inputs.tx_datetime.data[0]", id="time"
        ),
    ],
)
def test_bad_inputs_are_400_naming_the_field(
    client: TestClient, change: dict[str, Any], status: int, field: str
) -> None:
    response = client.post(INFER, json={"inputs": columns(2, **change)})
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"].startswith(f"field '{field}': "), body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"name": "tx_amount", "shape": [1], "datatype": "FP64"}]}, "inputs[0].data"),
        ({"inputs": "x"}, "inputs"),
        ({"inputs": columns(1), "outputs": [{"name": "secret"}]}, "outputs[0].name"),
        ({"inputs": columns(1), "command": "rm -rf"}, "command"),
        (
            {"inputs": [*columns(1), {"name": "evil", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
            "inputs[5].name",
        ),
    ],
)
def test_malformed_infer_requests_are_400(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post(INFER, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"field '{field}'")


def test_infer_over_max_batch_is_413_and_unknown_model_404(client: TestClient, api_project: Project) -> None:
    n = api_project.settings.serve.max_batch + 1
    response = client.post(INFER, json={"inputs": columns(n, amounts=[1.0] * n)})
    assert response.status_code == 413
    assert client.post("/v2/models/nope/infer", json={"inputs": columns(1)}).status_code == 404


def test_versioned_routes_serve_the_live_version_and_404_any_other(client: TestClient) -> None:
    live = client.get("/v2/models/fraud").json()["versions"][0]
    assert client.get(f"/v2/models/fraud/versions/{live}").json()["versions"] == [live]
    assert client.get(f"/v2/models/fraud/versions/{live}/ready").json() == {
        "name": "fraud",
        "ready": True,
        "version": live,
    }
    other = str(int(live) + 41)
    missing = client.get(f"/v2/models/fraud/versions/{other}")
    assert missing.status_code == 404
    assert f"serves version {live}" in missing.json()["error"]
    assert client.get(f"/v2/models/fraud/versions/{other}/ready").status_code == 404  # no such version
    infer = client.post(f"/v2/models/fraud/versions/{other}/infer", json={"inputs": []})
    assert infer.status_code == 404


def test_unknown_paths_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    unknown = client.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert "/openapi.json" in unknown.json()["error"]["message"]
    wrong = client.delete("/health/live")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == {
        "code": "method_not_allowed",
        "message": "DELETE is not allowed on /health/live; each route's methods are at /docs.",
    }
    assert "GET" in wrong.headers["allow"]
