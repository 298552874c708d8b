"""The data contract, enforced by the REST and v2 APIs, over real HTTP (FastAPI's TestClient).

A machine-failure project (tests/contract_support.py: a category, a pattern, units in brackets, every
contract type) is trained once; each bad value kind is a 422 whose message names the field, the value
and the rule (on v2 the protocol's 400 ``{"error": "<message>"}``, naming the tensor and the row);
``on_unknown_category`` and ``extra_fields`` are set in loopml.yaml (and per column in the contract)
and read by a server opened on the same project.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from contract_support import TEMPERATURE, WEAR, machines_project
from loopml.project import Project
from loopml.store import tables

PREDICT = "/v1/models/machines/predict"
INFER = "/v2/models/machines/infer"
GOOD: dict[str, Any] = {
    "UDI": 90_001,
    "Product ID": "L90001",
    "Type": "L",
    TEMPERATURE: 300.5,
    WEAR: 120,
    "maintained": False,
    "when": "2024-03-01T10:00:00",
}
DATATYPES = {
    "UDI": "INT64",
    "Product ID": "BYTES",
    "Type": "BYTES",
    TEMPERATURE: "FP64",
    WEAR: "INT64",
    "maintained": "BOOL",
    "when": "BYTES",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("machines") / "proj"
    machines_project(directory).store.engine.dispose()
    return directory


def reopen(directory: Path, target: Path, section: str | None = None, **keys: Any) -> Project:
    """A copy of the trained project, with ``keys`` set in ``section`` of its loopml.yaml."""
    shutil.copytree(directory, target)
    if section is not None:
        config = yaml.safe_load((target / "loopml.yaml").read_text(encoding="utf-8"))
        config.setdefault(section, {}).update(keys)
        (target / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Project.open(target, environ={})


@pytest.fixture(scope="module")
def project(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return reopen(trained, tmp_path_factory.mktemp("strict") / "proj")


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(project.app()) as test_client:
        yield test_client


def rejected(response: Any, field: str, rule: str, shown: str) -> dict[str, Any]:
    """A 422 naming ``field``, the value (as ``shown``) and ``rule``, in the message and in details."""
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "invalid_input"
    message = error["message"]
    assert message.startswith(f"field '{field}': "), message
    assert shown in message and f"(contract rule: {rule})" in message, message
    first = error["details"][0]
    assert (first["field"], first["rule"]) == (field, rule)
    assert set(first) == {"field", "value", "rule", "error"} and shown in first["error"]
    return error


BAD_VALUES = [
    pytest.param("evil", "x", "extra_field", "'x'", id="unknown-field"),
    pytest.param(TEMPERATURE, "42", "type", "'42' is text, not a number", id="number-as-text"),
    pytest.param(TEMPERATURE, True, "type", "true is a boolean, not a number", id="number-as-bool"),
    pytest.param(TEMPERATURE, 5000, "range", "5000 is above the maximum", id="over-max"),
    pytest.param(TEMPERATURE, -5.0, "range", "-5.0 is below the minimum 0", id="under-min"),
    pytest.param("when", 1700000000, "type", "1700000000 is a number, not a date-time", id="epoch-time"),
    pytest.param("when", "yesterday", "type", "'yesterday' is not an ISO 8601", id="text-time"),
    pytest.param("UDI", "abc", "type", "'abc' is text, not an integer", id="id-as-text"),
    pytest.param("UDI", "../../etc/passwd", "type", "'../../etc/passwd' is text", id="id-as-path"),
    pytest.param(WEAR, 1.5, "type", "1.5 is not a whole number", id="int-as-fraction"),
    pytest.param(WEAR, "1", "type", "'1' is text, not an integer", id="int-as-text"),
    pytest.param("Product ID", 12345, "type", "12345 is a number, not text", id="text-as-number"),
    pytest.param("maintained", 1, "type", "1 is a number, not a boolean", id="bool-as-number"),
    pytest.param("Type", None, "not_null", "null is not allowed", id="null"),
    pytest.param("Type", "Q", "category", "'Q' is not one of the categories H, L, M", id="category"),
    pytest.param("Product ID", "X1", "pattern", "'X1' does not match the pattern", id="pattern"),
]


@pytest.mark.parametrize(("field", "value", "rule", "shown"), BAD_VALUES)
def test_each_bad_value_is_422_naming_field_value_and_rule(
    client: TestClient, field: str, value: Any, rule: str, shown: str
) -> None:
    error = rejected(client.post(PREDICT, json={**GOOD, field: value}), field, rule, shown)
    assert error["details"][0]["value"] == value
    # In a list, the field is named by its position; the good records around it change nothing.
    rejected(client.post(PREDICT, json=[GOOD, {**GOOD, field: value}]), f"[1].{field}", rule, shown)


def test_the_category_message_says_how_to_score_it_as_missing(client: TestClient) -> None:
    error = rejected(client.post(PREDICT, json={**GOOD, "Type": "Q"}), "Type", "category", "'Q'")
    assert error["message"] == (
        "field 'Type': 'Q' is not one of the categories H, L, M (contract rule: category); "
        "set on_unknown_category: missing to score it as missing."
    )


def test_a_missing_input_and_every_problem_are_listed(client: TestClient) -> None:
    record = {k: v for k, v in GOOD.items() if k != WEAR} | {"Type": "Q", "evil": 1}
    error = client.post(PREDICT, json=record).json()["error"]
    assert [(d["field"], d["rule"]) for d in error["details"]] == [
        ("evil", "extra_field"),
        ("Type", "category"),
        (WEAR, "required"),
    ]
    assert "(2 more in error.details)" in error["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_number_names_its_field(client: TestClient, literal: str) -> None:
    body = '{"UDI": 7, "Product ID": "L00007", "Type": "M", "%s": %s, "%s": 3, "maintained": true, '
    body += '"when": "2024-03-01"}'
    raw = body % (TEMPERATURE, literal, WEAR)
    response = client.post(PREDICT, content=raw, headers={"content-type": "application/json"})
    shown = "NaN" if literal == "NaN" else ("-Infinity" if literal.startswith("-") else "Infinity")
    rejected(response, TEMPERATURE, "type", f"{shown} is not a finite number")


def test_a_misspelled_field_suggests_the_column(client: TestClient) -> None:
    record = {k: v for k, v in GOOD.items() if k != "Type"} | {"type": "L"}
    error = rejected(client.post(PREDICT, json=record), "type", "extra_field", "'L'")
    assert "did you mean 'Type'?" in error["message"]


def test_each_prediction_carries_the_id_it_was_given(client: TestClient, project: Project) -> None:
    records = [{**GOOD, "UDI": 90_100 + i, WEAR: 60 * i} for i in range(3)]
    records.append({k: v for k, v in GOOD.items() if k != "UDI"})  # the id is optional
    response = client.post(PREDICT, json=records)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["UDI"] for p in predictions] == [90_100, 90_101, 90_102, None]
    assert all(set(p) == {"prediction_id", "UDI", "score", "label"} for p in predictions)
    # The same scores as the model gives in process (the id is no feature).
    model = project.models.load()
    assert [p["score"] for p in predictions] == [float(s) for s in model.predict_records(records)]


def test_an_int_column_takes_a_whole_float(client: TestClient) -> None:
    as_float = client.post(PREDICT, json={**GOOD, WEAR: 120.0, "UDI": 90_001.0})
    as_int = client.post(PREDICT, json=GOOD)
    assert as_float.status_code == as_int.status_code == 200, as_float.text
    first, second = as_float.json()["predictions"][0], as_int.json()["predictions"][0]
    assert (first["score"], first["UDI"]) == (second["score"], 90_001)


def test_contract_columns_that_are_not_inputs_are_accepted(client: TestClient) -> None:
    # The target is a column of the contract, not an unknown field: sent, it is not used.
    with_target = client.post(PREDICT, json={**GOOD, "failure": 1})
    assert with_target.status_code == 200, with_target.text
    assert (
        with_target.json()["predictions"][0]["score"]
        == client.post(PREDICT, json=GOOD).json()["predictions"][0]["score"]
    )


def test_extra_fields_ignore_scores_as_without_them(trained: Path, tmp_path: Path) -> None:
    project = reopen(trained, tmp_path / "p", "serve", extra_fields="ignore")
    with TestClient(project.app()) as client:
        plain = client.post(PREDICT, json=GOOD)
        extra = client.post(PREDICT, json={**GOOD, "evil": "x", "../../etc": [1]})
        bad_type = client.post(PREDICT, json={**GOOD, "evil": "x", "Type": "Q"})
    assert plain.status_code == extra.status_code == 200, extra.text
    assert extra.json()["predictions"][0]["score"] == plain.json()["predictions"][0]["score"]
    rejected(bad_type, "Type", "category", "'Q'")  # the contract's columns are still enforced


def test_unknown_category_missing_scores_it_as_missing_and_says_so(trained: Path, tmp_path: Path) -> None:
    project = reopen(trained, tmp_path / "p", "contract", on_unknown_category="missing")
    with TestClient(project.app()) as client:
        response = client.post(PREDICT, json=[{**GOOD, "Type": "Q"}, GOOD])
        rejected(client.post(PREDICT, json={**GOOD, "Type": 3}), "Type", "type", "3 is a number")
    assert response.status_code == 200, response.text
    unknown, known = response.json()["predictions"]
    assert unknown["scored_as_missing"] == {"Type": "Q"} and "scored_as_missing" not in known
    # Scored exactly as the model scores a missing Type.
    model = project.models.load()
    assert unknown["score"] == float(model.predict_records([{**GOOD, "Type": None}], observe=False)[0])
    with project.store.engine.connect() as conn:
        logged = conn.execute(
            select(tables.predictions).where(tables.predictions.c.id == unknown["prediction_id"])
        ).one()
    assert logged.inputs["Type"] is None and logged.output["scored_as_missing"] == {"Type": "Q"}


def test_a_columns_own_policy_wins_over_the_project_default(tmp_path: Path) -> None:
    project = machines_project(
        tmp_path / "p", contract={"columns": {"Type": {"on_unknown_category": "missing"}}}
    )
    assert project.settings.contract.on_unknown_category == "reject"
    assert project.models.load().contract.column("Type").on_unknown_category == "missing"
    with TestClient(project.app()) as client:
        response = client.post(PREDICT, json={**GOOD, "Type": "Q"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["scored_as_missing"] == {"Type": "Q"}


# --- v2 -------------------------------------------------------------------------------------------------


def rejected_v2(response: Any, field: str, rule: str, shown: str) -> str:
    """The protocol's error: a 400 whose body is exactly ``{"error": "<message>"}``, the message naming
    ``field`` (the tensor and the row), the value (as ``shown``) and ``rule``."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    message: str = body["error"]
    assert message.startswith(f"field '{field}': "), message
    assert shown in message and f"(contract rule: {rule})" in message, message
    return message


def tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(k for row in rows for k in row))
    return [
        {"name": n, "shape": [len(rows)], "datatype": DATATYPES.get(n, "BYTES"), "data": [r[n] for r in rows]}
        for n in names
    ]


@pytest.mark.parametrize(("field", "value", "rule", "shown"), BAD_VALUES)
def test_v2_each_bad_value_is_400_naming_tensor_row_value_and_rule(
    client: TestClient, field: str, value: Any, rule: str, shown: str
) -> None:
    rows = [{**GOOD, field: value} if rule == "extra_field" else GOOD, {**GOOD, field: value}]
    response = client.post(INFER, json={"inputs": tensors(rows)})
    where = f"inputs[{len(GOOD)}].name" if rule == "extra_field" else f"inputs.{field}.data[1]"
    rejected_v2(response, where, rule, shown)


def test_v2_echoes_the_ids_and_says_what_was_scored_as_missing(trained: Path, tmp_path: Path) -> None:
    project = reopen(trained, tmp_path / "p", "contract", on_unknown_category="missing")
    rows = [{**GOOD, "UDI": 91_000}, {**GOOD, "UDI": 91_001, "Type": "Q"}]
    with TestClient(project.app()) as client:
        body = client.post(INFER, json={"inputs": tensors(rows)}).json()
        raw = json.dumps({"inputs": tensors([GOOD, {**GOOD, TEMPERATURE: math.nan}])})  # a NaN literal
        nan = client.post(INFER, content=raw, headers={"content-type": "application/json"})
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["UDI"] == {"name": "UDI", "datatype": "INT64", "shape": [2], "data": [91_000, 91_001]}
    assert body["parameters"] == {"scored_as_missing": [{"row": 1, "input": "Type", "value": "Q"}]}
    rejected_v2(nan, f"inputs.{TEMPERATURE}.data[1]", "type", "NaN is not a finite number")
