"""Explanations over HTTP, through FastAPI's TestClient on the trained fraud example: ``/v1``'s
``?explain=true`` and v2's ``parameters.explain``; contributions add up to the raw score (the log-odds
of the answered score), are named by the user's columns and window features, and are not logged."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loopml.project import Project
from loopml.store import tables

PREDICT = "/v1/models/fraud/predict"
INFER = "/v2/models/fraud/infer"
# Each record a transaction, a card and a terminal of its own (within the contract's ranges), so that
# the events the server remembers from one request cannot change the window features of another.
_ids = itertools.count(7_000_000)
_cards, _terminals = itertools.count(1000), itertools.count(9000)


@pytest.fixture
def client(api_project: Project) -> Iterator[TestClient]:
    with TestClient(api_project.app()) as test_client:
        yield test_client


def records(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "transaction_id": next(_ids),
                "customer_id": next(_cards),
                "terminal_id": next(_terminals),
                "tx_datetime": f"2026-01-2{i % 9}T0{i % 9}:15:00",
                "tx_amount": 12.5 + 140 * i,
            }
        )
    return out


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def check_explanation(explanation: dict[str, Any], score: float, k: int) -> None:
    entries = explanation["contributions"]
    assert len(entries) == k + 1 and entries[-1]["feature"] == "(rest)" and entries[-1]["features"] > 0
    total = explanation["base_value"] + sum(e["contribution"] for e in entries)
    assert abs(total - explanation["raw_score"]) <= 1e-6
    assert explanation["raw_score"] == pytest.approx(logit(score), abs=1e-6)  # log-odds of the score
    assert explanation["class"] == 1
    magnitudes = [abs(e["contribution"]) for e in entries[:-1]]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_v1_explain_gives_each_prediction_its_contributions(client: TestClient, api_project: Project) -> None:
    batch = records(3)
    plain = client.post(PREDICT, json=batch)
    assert plain.status_code == 200, plain.text
    for prediction in plain.json()["predictions"]:  # without explain, the shape is unchanged
        assert set(prediction) == {"prediction_id", "transaction_id", "score", "label"}
    response = client.post(f"{PREDICT}?explain=true&explain_k=3", json=batch)
    assert response.status_code == 200, response.text
    explained = response.json()["predictions"]
    assert [p["score"] for p in explained] == [p["score"] for p in plain.json()["predictions"]]
    for prediction in explained:
        assert set(prediction) == {"prediction_id", "transaction_id", "score", "label", "explanation"}
        check_explanation(prediction["explanation"], prediction["score"], 3)
    every = client.post(f"{PREDICT}?explain=true&explain_k=100", json=batch[0]).json()["predictions"][0]
    names = [e["feature"] for e in every["explanation"]["contributions"]]
    model = api_project.models.load()
    windows = {name for spec in model.windows for name in spec.names}
    relative = {n for n in names if "_vs_" in n}  # relative window features (relative_to: 30d)
    assert relative and set(names) - relative <= set(model.input_columns) | windows
    assert windows <= set(names) and "tx_amount" in names  # window features by their own names
    assert not any(n.startswith("tx_datetime_") for n in names)  # datetime parts summed into their column
    assert len(names) == len(set(names)) and "(rest)" not in names


def test_explanations_are_not_logged(api_project: Project) -> None:
    with TestClient(api_project.app()) as client:  # leaving it drains the prediction log
        response = client.post(f"{PREDICT}?explain=true", json=records(1))
    assert response.status_code == 200, response.text
    prediction_id = response.json()["predictions"][0]["prediction_id"]
    p = tables.predictions
    with api_project.store.engine.connect() as conn:
        output = conn.execute(select(p.c.output).where(p.c.id == prediction_id)).scalar_one()
    assert "explanation" not in output and output["prediction_id"] == prediction_id
    logged = api_project.predictions.explain(prediction_id)  # recomputed from the logged inputs
    assert logged.explanation.to_dict() == response.json()["predictions"][0]["explanation"]


@pytest.mark.parametrize("query", ["explain=maybe", "explain=true&explain_k=0", "explain=true&explain_k=101"])
def test_bad_explain_parameters_are_422_naming_them(client: TestClient, query: str) -> None:
    response = client.post(f"{PREDICT}?{query}", json=records(1))
    assert response.status_code == 422, response.text
    assert "explain" in response.json()["error"]["message"]


def tensors_of(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types = {"tx_datetime": "BYTES", "tx_amount": "FP64"}
    return [
        {"name": c, "shape": [len(batch)], "datatype": types.get(c, "INT64"), "data": [r[c] for r in batch]}
        for c in batch[0]
    ]


def test_v2_explain_adds_tensors_a_v2_client_reads(client: TestClient) -> None:
    batch = records(4)
    plain = client.post(INFER, json={"inputs": tensors_of(batch)})
    assert plain.status_code == 200, plain.text
    standard = [o["name"] for o in plain.json()["outputs"]]
    assert {"score", "label", "prediction_id"} <= set(standard) and not any("explain" in n for n in standard)
    response = client.post(
        INFER, json={"inputs": tensors_of(batch), "parameters": {"explain": True, "explain_k": 2}}
    )
    assert response.status_code == 200, response.text
    out = {o["name"]: o for o in response.json()["outputs"]}
    assert list(out) == [
        *standard,  # the requested (here: every) output first, then the explanation's
        "explain_raw_score",
        "explain_base_value",
        "explain_feature",
        "explain_contribution",
        "explain_class",
    ]
    assert out["score"]["data"] == {o["name"]: o for o in plain.json()["outputs"]}["score"]["data"]
    assert out["explain_feature"]["shape"] == out["explain_contribution"]["shape"] == [4, 3]
    assert out["explain_feature"]["datatype"] == "BYTES" and out["explain_contribution"]["datatype"] == "FP64"
    for i in range(4):
        row = out["explain_contribution"]["data"][3 * i : 3 * i + 3]
        assert out["explain_feature"]["data"][3 * i + 2] == "(rest)"
        total = out["explain_base_value"]["data"][i] + sum(row)
        assert abs(total - out["explain_raw_score"]["data"][i]) <= 1e-6
        assert out["explain_raw_score"]["data"][i] == pytest.approx(logit(out["score"]["data"][i]), abs=1e-6)
    assert out["explain_class"]["data"] == ["1"] * 4


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"explain": "yes"}, "parameters.explain"),
        ({"explain": True, "explain_k": 2.5}, "parameters.explain_k"),
    ],
)
def test_v2_bad_explain_parameters_are_400_naming_them(
    client: TestClient, parameters: dict[str, Any], field: str
) -> None:
    response = client.post(INFER, json={"inputs": tensors_of(records(1)), "parameters": parameters})
    assert response.status_code == 400, response.text  # the protocol's error: {"error": "<message>"}
    assert response.json()["error"].startswith(f"field '{field}'")


def test_openapi_documents_the_explain_option(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/v1/models/{name}/predict"]["post"]
    parameters = {p["name"]: p for p in predict["parameters"]}
    assert {"explain", "explain_k"} <= set(parameters)
    assert "contributions" in parameters["explain"]["description"]
    assert "explain=true" in predict["description"]
    assert "explain_contribution" in spec["paths"]["/v2/models/{name}/infer"]["post"]["description"]
