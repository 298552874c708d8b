"""A standard Open Inference Protocol client against a real server: ``tritonclient`` over HTTP (JSON and
binary tensors) and over gRPC (raw and typed contents), errors included, tokens, and the prediction log.

The server is uvicorn on a free port with the gRPC endpoint in its event loop (``BackgroundServer``
with ``grpc_port``, as ``loopml serve --grpc-port`` runs it); the last tests start ``loopml serve
--grpc-port`` itself in a child process.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from loopml.errors import BusyError
from loopml.project import Project
from loopml.serve import BackgroundServer
from loopml.store import tables

_entities = itertools.count(8_000_000)
DATATYPES = {"tx_datetime": "BYTES", "tx_amount": "FP64"}  # the others are INT64
BAD_DATATYPE = (
    "field 'inputs[4].datatype': input 'tx_amount' is FP64 (accepted: FP16, FP32, FP64, INT16, INT32, "
    "INT64, INT8, UINT16, UINT32, UINT64, UINT8); got 'BYTES'."
)
MISSING_INPUT = (
    "field 'inputs': input 'tx_amount' is missing (contract rule: required); send a tensor named "
    "'tx_amount' (FP64) with one value per row."
)


def rows(n: int) -> dict[str, np.ndarray]:
    """``n`` rows as columns (NumPy arrays, as a client holds them), each with entities of its own."""
    ids = np.array([next(_entities) for _ in range(n)], dtype=np.int64)
    return {
        "transaction_id": ids,
        "customer_id": ids.copy(),
        "terminal_id": ids.copy(),
        "tx_datetime": np.array(
            [f"2026-01-2{i % 9}T1{i % 9}:05:00".encode() for i in range(n)], dtype=object
        ),
        "tx_amount": np.array([8.0 + 55.5 * i for i in range(n)]),
    }


def records(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    n = len(columns["tx_amount"])
    out = [{k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in columns.items()} for i in range(n)]
    return [{**r, "tx_datetime": r["tx_datetime"].decode()} for r in out]


def inputs(module: Any, columns: dict[str, np.ndarray], **options: Any) -> list[Any]:
    """The client's ``InferInput`` of each column (``module``: tritonclient.http or .grpc)."""
    made = []
    for name, values in columns.items():
        tensor = module.InferInput(name, list(values.shape), DATATYPES.get(name, "INT64"))
        tensor.set_data_from_numpy(values, **options)
        made.append(tensor)
    return made


def expected_scores(project: Project, columns: dict[str, np.ndarray]) -> list[float]:
    model = project.models.load()
    return [float(s) for s in model.predict_records(records(columns), observe=False)]


@pytest.fixture(scope="module")
def server(api_project: Project) -> Iterator[BackgroundServer]:
    with BackgroundServer(api_project.app(), grpc_port=0) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: BackgroundServer) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(server: BackgroundServer) -> Iterator[Any]:
    client = grpcclient.InferenceServerClient(server.grpc_address)
    yield client
    client.close()


# --- HTTP -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
def test_http_client_scores_json_and_binary_tensors(http: Any, api_project: Project, binary: bool) -> None:
    columns = rows(3)
    result = http.infer("fraud", inputs(httpclient, columns, binary_data=binary), request_id="r-7")
    # No outputs named: the client asks every output in binary (binary_data_output) and reads them.
    assert result.get_response()["id"] == "r-7" and result.get_response()["model_version"] == "1"
    assert result.as_numpy("score").tolist() == expected_scores(api_project, columns)
    assert result.as_numpy("label").tolist() == [int(s >= 0.5) for s in result.as_numpy("score")]
    assert result.as_numpy("transaction_id").tolist() == columns["transaction_id"].tolist()
    assert len(set(result.as_numpy("prediction_id").tolist())) == 3


def test_http_client_requested_outputs_and_explanations(http: Any) -> None:
    columns = rows(2)
    outputs = [httpclient.InferRequestedOutput("score", binary_data=False)]
    result = http.infer(
        "fraud", inputs(httpclient, columns), outputs=outputs, parameters={"explain": True, "explain_k": 2}
    )
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == [
        "score",
        "explain_raw_score",
        "explain_base_value",
        "explain_feature",
        "explain_contribution",
        "explain_class",
    ]
    contributions = result.as_numpy("explain_contribution")
    # Named outputs without binary_data_output: the explanation comes as JSON tensors (text as str).
    assert contributions.shape == (2, 3) and result.as_numpy("explain_feature")[0, 2] == "(rest)"
    total = result.as_numpy("explain_base_value") + contributions.sum(axis=1)
    assert np.allclose(total, result.as_numpy("explain_raw_score"), atol=1e-6)


def test_http_client_metadata_and_health(http: Any) -> None:
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready("fraud")
    assert http.is_model_ready("fraud", "1") and not http.is_model_ready("fraud", "2")  # 404: no such version
    assert http.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = http.get_model_metadata("fraud")
    assert {t["name"]: t["datatype"] for t in metadata["inputs"]} == {
        "tx_datetime": "BYTES",
        "tx_amount": "FP64",
        "customer_id": "INT64",
        "terminal_id": "INT64",
    }


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
def test_http_client_sees_the_status_and_message_of_each_error(http: Any, binary: bool) -> None:
    columns = rows(2)
    good = inputs(httpclient, columns, binary_data=binary)
    amount_as_text = httpclient.InferInput("tx_amount", [2], "BYTES")
    amount_as_text.set_data_from_numpy(np.array([b"1.5", b"2"], dtype=object), binary_data=binary)
    with pytest.raises(InferenceServerException) as bad_datatype:
        http.infer("fraud", [*good[:4], amount_as_text])
    assert (bad_datatype.value.status(), bad_datatype.value.message()) == ("400", BAD_DATATYPE)
    with pytest.raises(InferenceServerException) as missing:
        http.infer("fraud", good[:4])
    assert (missing.value.status(), missing.value.message()) == ("400", MISSING_INPUT)
    with pytest.raises(InferenceServerException) as unknown:
        http.infer("nope", good)
    assert unknown.value.status() == "404"
    assert unknown.value.message() == "model 'nope' is not served here; this server serves 'fraud'."


def test_the_http_error_body_is_exactly_the_protocols(server: BackgroundServer) -> None:
    record = records(rows(1))[0]
    tensors = [
        {"name": n, "shape": [1], "datatype": DATATYPES.get(n, "INT64"), "data": [v]}
        for n, v in record.items()
        if n != "tx_amount"
    ]
    response = httpx.post(f"{server.url}/v2/models/fraud/infer", json={"inputs": tensors})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": MISSING_INPUT}


# --- gRPC -------------------------------------------------------------------------------------------------


def test_grpc_client_scores_raw_tensors_as_rest_does(grpc_client: Any, api_project: Project) -> None:
    columns = rows(3)
    result = grpc_client.infer(
        "fraud", inputs(grpcclient, columns), request_id="g-1", parameters={"explain": True, "explain_k": 1}
    )
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("fraud", "1", "g-1")
    assert len(response.raw_output_contents) == len(response.outputs)  # a raw request gets raw outputs
    assert result.as_numpy("score").tolist() == expected_scores(api_project, columns)
    assert result.as_numpy("transaction_id").tolist() == columns["transaction_id"].tolist()
    assert result.as_numpy("explain_contribution").shape == (3, 2)
    assert [o.name for o in result.get_response().outputs][-1] == "explain_class"


def test_grpc_typed_contents_get_typed_contents(server: BackgroundServer, api_project: Project) -> None:
    """A request with ``contents`` (no raw data), built with the client library's own messages."""
    columns = rows(2)
    request = service_pb2.ModelInferRequest(model_name="fraud", model_version="1")
    for name, values in columns.items():
        tensor = request.inputs.add(name=name, datatype=DATATYPES.get(name, "INT64"), shape=[2])
        if name == "tx_datetime":
            tensor.contents.bytes_contents.extend(values.tolist())
        elif name == "tx_amount":
            tensor.contents.fp64_contents.extend(values.tolist())
        else:
            tensor.contents.int64_contents.extend(values.tolist())
    request.outputs.add(name="score")
    request.outputs.add(name="prediction_id")
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert not response.raw_output_contents
    score, prediction_id = response.outputs
    assert (score.name, score.datatype, list(score.shape)) == ("score", "FP64", [2])
    assert list(score.contents.fp64_contents) == expected_scores(api_project, columns)
    assert len(prediction_id.contents.bytes_contents) == 2


def test_grpc_client_sees_the_status_and_message_of_each_error(
    grpc_client: Any, api_project: Project
) -> None:
    good = inputs(grpcclient, rows(2))
    amount_as_text = grpcclient.InferInput("tx_amount", [2], "BYTES")
    amount_as_text.set_data_from_numpy(np.array([b"1.5", b"2"], dtype=object))
    cases = [
        (("fraud", [*good[:4], amount_as_text]), "StatusCode.INVALID_ARGUMENT", BAD_DATATYPE),
        (("fraud", good[:4]), "StatusCode.INVALID_ARGUMENT", MISSING_INPUT),
        (
            ("nope", good),
            "StatusCode.NOT_FOUND",
            "model 'nope' is not served here; this server serves 'fraud'.",
        ),
    ]
    for args, status, message in cases:
        with pytest.raises(InferenceServerException) as error:
            grpc_client.infer(*args)
        assert (error.value.status(), error.value.message()) == (status, message)
    with pytest.raises(InferenceServerException) as version:
        grpc_client.infer("fraud", good, model_version="7")
    assert version.value.status() == "StatusCode.NOT_FOUND"
    assert version.value.message().startswith("version '7' of model 'fraud' is not served here")
    over = api_project.settings.serve.max_batch + 1
    big = grpcclient.InferInput("tx_amount", [over], "FP64")
    big.set_data_from_numpy(np.ones(over))
    with pytest.raises(InferenceServerException) as too_many:
        grpc_client.infer("fraud", [big])
    assert too_many.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert too_many.value.message() == f"batch of {over} rows is over the limit of {over - 1}."


def test_grpc_client_metadata_and_health(grpc_client: Any, http: Any) -> None:
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("fraud") and grpc_client.is_model_ready("fraud", "1")
    with pytest.raises(InferenceServerException) as missing:  # a version the registry lacks: 404, as REST
        grpc_client.is_model_ready("fraud", "2")
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    server_metadata = grpc_client.get_server_metadata(as_json=True)
    assert server_metadata["name"] == "loopml" and server_metadata["extensions"] == ["binary_tensor_data"]
    over_grpc = grpc_client.get_model_metadata("fraud", as_json=True)
    over_http = http.get_model_metadata("fraud")
    assert over_grpc["versions"] == over_http["versions"] == ["1"]
    as_pairs = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in over_grpc["inputs"]]
    assert as_pairs == [(t["name"], t["datatype"], t["shape"]) for t in over_http["inputs"]]


def scrape(server: BackgroundServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` read by prometheus_client's own parser: each sample's value by name and labels."""
    text = httpx.get(f"{server.url}/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_grpc_calls_count_in_the_metrics_as_rest_ones(server: BackgroundServer, grpc_client: Any) -> None:
    def grpc_calls(metrics: dict[Any, float], rpc: str, code: str) -> float:
        labels = {("rpc", rpc), ("code", code), ("model", "fraud"), ("version", "1")}
        return metrics.get(("loopml_grpc_requests_total", frozenset(labels)), 0.0)

    predictions = ("loopml_predictions_total", frozenset({("model", "fraud"), ("version", "1")}))
    before = scrape(server)
    grpc_client.infer("fraud", inputs(grpcclient, rows(3)))
    with pytest.raises(InferenceServerException):
        grpc_client.infer("fraud", inputs(grpcclient, rows(2)), model_version="7")
    assert grpc_client.is_model_ready("fraud")
    after = scrape(server)
    assert after[predictions] - before.get(predictions, 0.0) == 3  # as REST's predictions
    assert grpc_calls(after, "ModelInfer", "OK") - grpc_calls(before, "ModelInfer", "OK") == 1
    assert grpc_calls(after, "ModelInfer", "NOT_FOUND") - grpc_calls(before, "ModelInfer", "NOT_FOUND") == 1
    assert grpc_calls(after, "ModelReady", "OK") - grpc_calls(before, "ModelReady", "OK") == 1
    timed = ("loopml_grpc_request_duration_seconds_count", frozenset({("rpc", "ModelInfer")}))
    assert after[timed] - before.get(timed, 0.0) == 2


def test_grpc_calls_are_in_the_access_log(grpc_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loopml.access")
    grpc_client.infer("fraud", inputs(grpcclient, rows(1)))
    with pytest.raises(InferenceServerException):
        grpc_client.get_model_metadata("nope")
    calls = [(r.method, r.path, r.status) for r in caplog.records if r.name == "loopml.access"]
    assert calls == [
        ("GRPC", "/inference.GRPCInferenceService/ModelInfer", "OK"),
        ("GRPC", "/inference.GRPCInferenceService/ModelMetadata", "NOT_FOUND"),
    ]


def test_grpc_predictions_are_in_the_prediction_log(api_project: Project) -> None:
    with BackgroundServer(api_project.app(), grpc_port=0) as running:  # leaving it drains the log
        client = grpcclient.InferenceServerClient(running.grpc_address)
        result = client.infer("fraud", inputs(grpcclient, rows(2)))
        client.close()
    ids = [i.decode() for i in result.as_numpy("prediction_id").tolist()]
    with api_project.store.engine.connect() as conn:
        logged = conn.execute(select(tables.predictions).where(tables.predictions.c.id.in_(ids))).fetchall()
    assert {r.id for r in logged} == set(ids)
    assert all(r.origin == "api" and r.model_version == 1 for r in logged)


def secured(project: Project, token: str) -> Project:
    serve = project.settings.serve.model_copy(update={"predict_token": SecretStr(token)})
    return project.with_settings(project.settings.model_copy(update={"serve": serve}))


def test_grpc_needs_the_tokens_rest_needs(api_project: Project) -> None:
    token = secrets.token_urlsafe(32)
    with BackgroundServer(secured(api_project, token).app(), grpc_port=0) as running:
        client = grpcclient.InferenceServerClient(running.grpc_address)
        tensors = inputs(grpcclient, rows(1))
        with pytest.raises(InferenceServerException) as anonymous:
            client.infer("fraud", tensors)
        assert (anonymous.value.status(), anonymous.value.message()) == (
            "StatusCode.UNAUTHENTICATED",
            "ModelInfer needs a bearer token. Send the metadata 'authorization: Bearer <token>'.",
        )
        with pytest.raises(InferenceServerException) as wrong:
            client.infer("fraud", tensors, headers={"authorization": f"Bearer {token[::-1]}"})
        assert wrong.value.message() == "the bearer token for ModelInfer is not valid."
        with pytest.raises(InferenceServerException) as metadata:
            client.get_model_metadata("fraud")  # v2_metadata is closed once a token is set, as on REST
        assert metadata.value.status() == "StatusCode.UNAUTHENTICATED"
        assert client.is_server_live() and client.is_model_ready("fraud")  # health stays open
        bearer = {"authorization": f"Bearer {token}"}
        assert client.infer("fraud", tensors, headers=bearer).as_numpy("score").shape == (1,)
        assert client.get_model_metadata("fraud", headers=bearer).name == "fraud"
        client.close()


# --- loopml serve --grpc-port -----------------------------------------------------------------------------


def test_loopml_serve_grpc_port_serves_both_and_stops_on_sigterm(api_project: Project) -> None:
    token = secrets.token_urlsafe(32)
    env = {"LOOPML_SERVE__PREDICT_TOKEN": token}
    bearer = {"authorization": f"Bearer {token}"}
    with api_project.start_server(env=env, grpc_port=0) as process:
        client = grpcclient.InferenceServerClient(process.grpc_address)
        result = client.infer("fraud", inputs(grpcclient, rows(2)), headers=bearer)
        client.close()
        rest = httpclient.InferenceServerClient(process.url.removeprefix("http://"))
        assert rest.is_model_ready("fraud")
        rest.close()
        process.terminate()
        assert process.wait() == 0
    ids = [i.decode() for i in result.as_numpy("prediction_id").tolist()]
    with api_project.store.engine.connect() as conn:
        found = conn.execute(select(tables.predictions.c.id).where(tables.predictions.c.id.in_(ids))).all()
    assert len(found) == 2  # the child process's prediction log drained on SIGTERM


def test_a_grpc_port_in_use_is_one_line(api_project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BusyError, match=rf"^port {port} on 127.0.0.1 is in use; pass --grpc-port"):
            api_project.serve("127.0.0.1", 0, grpc_port=port)
