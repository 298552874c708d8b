"""OpenAPI from the contract: the predict route's request and response schemas describe the served
version's contract and task (so a generated client is typed), agree with what the API accepts and
answers, follow the alias; and ``/docs`` works in a browser with the network blocked."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pydantic
import pytest
from fastapi.testclient import TestClient

from loopml.project import Project
from loopml.serve import BackgroundServer
from loopml.serve.openapi import record_schema
from loopml.validate import ColumnSpec, DataContract, ScoringPolicy

jsonschema = pytest.importorskip("jsonschema")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PREDICT = "/v1/models/{name}/predict"
RECORD: dict[str, Any] = {
    "customer_id": 5_999_999,
    "terminal_id": 5_999_999,
    "tx_datetime": "2026-01-20T14:30:00",
    "tx_amount": 42.5,
}


def _validator(document: dict[str, Any], name: str) -> Any:
    """A validator of ``#/components/schemas/<name>`` that resolves the document's references."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_the_predict_schemas_come_from_the_contract(api_project: Project) -> None:
    with TestClient(api_project.app()) as client:
        document = client.get("/openapi.json").json()
        operation = document["paths"][PREDICT]["post"]
        request = operation["requestBody"]["content"]["application/json"]["schema"]
        response = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert request == {"$ref": "#/components/schemas/FraudPredictRequest"}
        assert response == {"$ref": "#/components/schemas/FraudPredictions"}
        record = document["components"]["schemas"]["FraudRecord"]
        assert set(record["required"]) == {"customer_id", "terminal_id", "tx_datetime", "tx_amount"}
        assert record["additionalProperties"] is False
        props = record["properties"]
        assert props["customer_id"]["type"] == "integer" and props["tx_amount"]["type"] == "number"
        assert props["tx_amount"]["minimum"] == 0 and props["tx_amount"]["maximum"] > 100
        assert props["tx_datetime"] == {**props["tx_datetime"], "type": "string", "format": "date-time"}
        prediction = document["components"]["schemas"]["FraudPrediction"]
        assert prediction["properties"]["label"]["enum"] == [0, 1]
        assert {"prediction_id", "score", "label"} <= set(prediction["required"])

        # the schema and the API agree: what it accepts is answered, what it refuses is a 422
        requests = _validator(document, "FraudPredictRequest")
        for body in (RECORD, [RECORD, RECORD]):
            assert requests.is_valid(body)
            answer = client.post("/v1/models/fraud/predict", json=body)
            assert answer.status_code == 200
            _validator(document, "FraudPredictions").validate(answer.json())
        for bad in (
            {**RECORD, "tx_amount": -1},
            {**RECORD, "customer_id": "7"},
            {k: v for k, v in RECORD.items() if k != "tx_amount"},
            {**RECORD, "tx_amout": 1.0},
            [],
        ):
            assert not requests.is_valid(bad), bad
            assert client.post("/v1/models/fraud/predict", json=bad).status_code == 422, bad


def test_the_document_is_valid_openapi_and_a_generator_makes_a_typed_client(
    api_project: Project, tmp_path: Path
) -> None:
    """openapi-spec-validator accepts the document; datamodel-code-generator (an OpenAPI client
    generator) makes pydantic models of it whose types and bounds are the contract's."""
    validate_spec = pytest.importorskip("openapi_spec_validator").validate
    codegen = pytest.importorskip("datamodel_code_generator")
    with TestClient(api_project.app()) as client:
        document = client.get("/openapi.json").json()
        validate_spec(document)  # raises on anything OpenAPI 3.1 does not allow
        target = tmp_path / "fraud_client.py"
        codegen.generate(
            json.dumps(document),
            input_file_type=codegen.InputFileType.OpenAPI,
            output_model_type=codegen.DataModelType.PydanticV2BaseModel,
            output=target,
            formatters=[codegen.Formatter.BUILTIN],
        )
        spec = importlib.util.spec_from_file_location("fraud_client", target)
        assert spec is not None and spec.loader is not None
        generated = importlib.util.module_from_spec(spec)
        sys.modules["fraud_client"] = generated  # pydantic resolves the postponed annotations here
        try:
            spec.loader.exec_module(generated)
            record = generated.FraudRecord(**{**RECORD, "tx_datetime": "2026-01-20T14:30:00Z"})
            assert isinstance(record.tx_datetime, datetime) and isinstance(record.customer_id, int)
            for bad in (
                {**RECORD, "tx_amount": -1},
                {**RECORD, "customer_id": "seven"},
                {**RECORD, "tx_amout": 1.0},
                {"tx_amount": 1.0},
            ):
                with pytest.raises(pydantic.ValidationError):
                    generated.FraudRecord(**bad)
            # what the typed client sends is answered, and the answer parses into its response type
            body = record.model_dump(mode="json", exclude_none=True)
            answer = client.post("/v1/models/fraud/predict", json=body)
            assert answer.status_code == 200, answer.text
            parsed = generated.FraudPredictions.model_validate(answer.json())
        finally:
            del sys.modules["fraud_client"]
    assert parsed.model_version == 1 and 0 <= parsed.predictions[0].score <= 1
    assert parsed.predictions[0].label.value in (0, 1)


def test_categories_null_patterns_and_policies() -> None:
    contract = DataContract(
        name="machines",
        columns=[
            ColumnSpec(name="Type", dtype="string", categories=["H", "L", "M"]),
            ColumnSpec(name="site", dtype="string", categories=["a", "b"], on_unknown_category="missing"),
            ColumnSpec(name="torque", dtype="float", nullable=True, min=0, max=90.5),
            ColumnSpec(name="serial", dtype="string", pattern="[A-Z]{2}[0-9]+"),
            ColumnSpec(name="cycles", dtype="int", min=0),
            ColumnSpec(name="ok", dtype="bool"),
        ],
    )
    inputs = ["Type", "site", "torque", "serial", "cycles", "ok"]
    schema = record_schema(contract, inputs, ScoringPolicy())
    props = schema["properties"]
    assert props["Type"] == {"type": "string", "enum": ["H", "L", "M"]}
    assert "enum" not in props["site"] and props["site"]["examples"] == ["a", "b"]  # scored as missing
    assert props["torque"] == {"type": ["number", "null"], "format": "double", "minimum": 0, "maximum": 90.5}
    assert props["serial"]["pattern"] == "[A-Z]{2}[0-9]+" and props["ok"] == {"type": "boolean"}
    assert props["cycles"] == {"type": "integer", "format": "int64", "minimum": 0}
    assert schema["required"] == ["Type", "site", "serial", "cycles", "ok"]  # torque may be null
    lax = record_schema(contract, inputs, ScoringPolicy(on_unknown_category="missing", extra_fields="ignore"))
    assert "enum" not in lax["properties"]["Type"] and "additionalProperties" not in lax


def test_the_document_follows_the_alias(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    with TestClient(project.app()) as client:
        first = client.get("/openapi.json").json()["components"]["schemas"]["FraudRecord"]
        assert "version 1" in first["description"]
        project.models.promote(2, reason="test")
        deadline = time.monotonic() + 10  # the server follows the alias within a second
        while client.post("/v1/models/fraud/predict", json=RECORD).json()["model_version"] != 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = client.get("/openapi.json").json()["components"]["schemas"]["FraudRecord"]
    assert "version 2" in second["description"]


def test_docs_assets_come_from_the_server(api_project: Project) -> None:
    with TestClient(api_project.app()) as client:
        page = client.get("/docs").text
        assert "cdn." not in page and "/docs/assets/swagger-ui-bundle.js" in page
        assert "fonts.googleapis" not in client.get("/redoc").text
        script = client.get("/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert client.get("/docs/assets/..%2Fcore.py").status_code == 404
        assert client.get("/docs/assets/core.py").json()["error"]["code"] == "not_found"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize(("page_path", "operation"), [("/docs", ".opblock-summary-path"), ("/redoc", "h2")])
def test_docs_render_offline_in_a_browser(api_project: Project, page_path: str, operation: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    blocked: list[str] = []
    with BackgroundServer(api_project.app()) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context()

            def only_localhost(route: Any) -> None:  # the network is blocked: only this server answers
                if urlparse(route.request.url).hostname == server.host:
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", only_localhost)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}{page_path}")
            page.wait_for_selector(operation, timeout=30_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert blocked == [] and errors == []
    for listed in ("/v1/models/{name}/predict", "/v1/feedback", "/health/ready", "/metrics"):
        assert listed in text, listed
    if page_path == "/docs":
        assert "FraudRecord" in text and "FraudPredictions" in text  # the contract's schemas, by name
