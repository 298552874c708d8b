"""The binary tensor data extension of the v2 REST API, byte by byte, and the protocol's error shape.

Requests are built by hand (the JSON header, then each binary input's bytes, with the
``Inference-Header-Content-Length`` header) so each rule of the extension is tested on its own; a
standard client library speaks it in tests/serve/test_v2_clients.py. Every error is a 400 (or 404,
405, 401) whose body is exactly ``{"error": "<message>"}``.
"""

from __future__ import annotations

import itertools
import json
import secrets
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from loopml.project import Project

INFER = "/v2/models/fraud/infer"
HEADER = "Inference-Header-Content-Length"
_entities = itertools.count(6_500_000)


@pytest.fixture(scope="module")
def client(api_project: Project) -> Iterator[TestClient]:
    with TestClient(api_project.app()) as test_client:
        yield test_client


def values(n: int) -> dict[str, tuple[str, list[Any]]]:
    """``n`` rows as columns: name -> (datatype, values), each row with a card and terminal of its own."""
    ids = [next(_entities) for _ in range(n)]
    return {
        "transaction_id": ("INT64", ids),
        "customer_id": ("INT64", ids),
        "terminal_id": ("INT64", ids),
        "tx_datetime": ("BYTES", [f"2026-01-2{i % 9}T0{i % 9}:15:00" for i in range(n)]),
        "tx_amount": ("FP64", [12.5 + 40 * i for i in range(n)]),
    }


def raw(datatype: str, data: list[Any]) -> bytes:
    """The extension's bytes of one tensor, written here independently of the server's encoder."""
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in data)
    return np.asarray(data, dtype={"INT64": "<i8", "FP64": "<f8"}[datatype]).tobytes()


def binary_request(
    columns: dict[str, tuple[str, list[Any]]], json_inputs: tuple[str, ...] = (), **extra: Any
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a request sending every column in binary (but ``json_inputs``)."""
    inputs, blobs = [], []
    for name, (datatype, data) in columns.items():
        tensor: dict[str, Any] = {"name": name, "shape": [len(data)], "datatype": datatype}
        if name in json_inputs:
            tensor["data"] = data
        else:
            blob = raw(datatype, data)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        inputs.append(tensor)
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(blobs), {HEADER: str(len(header)), "content-type": "application/octet-stream"}


def json_tensors(columns: dict[str, tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    return [{"name": k, "shape": [len(d)], "datatype": t, "data": d} for k, (t, d) in columns.items()]


def decoded(response: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON header of a binary response and each output's values (binary ones decoded here)."""
    length = int(response.headers[HEADER])
    header = json.loads(response.content[:length])
    blob, offset, out = response.content[length:], 0, {}
    for tensor in header["outputs"]:
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:
            out[tensor["name"]] = tensor["data"]
            continue
        part, offset = blob[offset : offset + size], offset + size
        if tensor["datatype"] == "BYTES":
            items, i = [], 0
            while i < len(part):
                (n,) = struct.unpack_from("<I", part, i)
                items.append(part[i + 4 : i + 4 + n].decode())
                i += 4 + n
            out[tensor["name"]] = items
        else:
            dtype = {"INT64": "<i8", "FP64": "<f8"}[tensor["datatype"]]
            out[tensor["name"]] = np.frombuffer(part, dtype=dtype).tolist()
    assert offset == len(blob), "bytes no output claimed"
    return header, out


def protocol_error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    message: str = body["error"]
    return message


def test_binary_inputs_score_as_json_ones_and_outputs_come_back_in_binary(
    client: TestClient, api_project: Project
) -> None:
    columns = values(3)
    content, headers = binary_request(columns, parameters={"binary_data_output": True})
    response = client.post(INFER, content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header, out = decoded(response)
    assert all("data" not in t for t in header["outputs"])
    assert [t["name"] for t in header["outputs"]] == ["score", "label", "prediction_id", "transaction_id"]
    model = api_project.models.load()
    records = [{k: d[i] for k, (_, d) in columns.items()} for i in range(3)]
    assert out["score"] == [float(s) for s in model.predict_records(records, observe=False)]
    assert out["label"] == [int(s >= 0.5) for s in out["score"]]
    assert out["transaction_id"] == columns["transaction_id"][1]
    assert len(set(out["prediction_id"])) == 3


def test_inputs_mix_json_and_binary_and_each_output_chooses(client: TestClient) -> None:
    columns = values(2)
    outputs = [{"name": "score", "parameters": {"binary_data": True}}, {"name": "label"}]
    content, headers = binary_request(columns, json_inputs=("tx_datetime", "customer_id"), outputs=outputs)
    response = client.post(INFER, content=content, headers=headers)
    assert response.status_code == 200, response.text
    header, out = decoded(response)
    by_name = {t["name"]: t for t in header["outputs"]}
    assert by_name["score"]["parameters"]["binary_data_size"] == 16 and "data" not in by_name["score"]
    assert by_name["label"]["data"] == out["label"] and "parameters" not in by_name["label"]
    # The same rows as JSON tensors (their entities again: the window history is the same) agree.
    plain = client.post(INFER, json={"inputs": json_tensors(columns), "outputs": [{"name": "score"}]})
    assert len(plain.json()["outputs"][0]["data"]) == len(out["score"])


def test_json_request_gets_json_unless_it_asks(client: TestClient) -> None:
    response = client.post(INFER, json={"inputs": json_tensors(values(1))})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert HEADER not in response.headers
    asked = client.post(
        INFER, json={"inputs": json_tensors(values(1)), "parameters": {"binary_data_output": True}}
    )
    assert asked.status_code == 200 and int(asked.headers[HEADER]) < len(asked.content)


def test_versioned_infer_takes_binary_too(client: TestClient) -> None:
    content, headers = binary_request(values(1))
    response = client.post("/v2/models/fraud/versions/1/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1"


def _with_amount_blob(
    blob: bytes, declared: int | None = None, datatype: str = "FP64"
) -> tuple[bytes, dict[str, str]]:
    """A request whose tx_amount (1 row) is ``blob``, declared as ``declared`` bytes."""
    columns = values(1)
    del columns["tx_amount"]
    size = len(blob) if declared is None else declared
    amount = {
        "name": "tx_amount",
        "shape": [1],
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }
    inputs = [*json_tensors(columns), amount]
    header = orjson.dumps({"inputs": inputs})
    return header + blob, {HEADER: str(len(header))}


@pytest.mark.parametrize(
    ("blob", "declared", "datatype", "expected"),
    [
        pytest.param(
            raw("FP64", [1.0]),
            16,
            "FP64",
            "field 'inputs[4].parameters.binary_data_size': input 'tx_amount' says 16 bytes; the body has 8 "
            "left after the JSON header (Inference-Header-Content-Length) and the inputs before it.",
            id="size-past-the-body",
        ),
        pytest.param(
            raw("FP64", [1.0]) + b"\x00\x01",
            8,
            "FP64",
            "field 'inputs': 2 bytes after the JSON header belong to no input; give each binary input's "
            "size in its parameters.binary_data_size.",
            id="bytes-left-over",
        ),
        pytest.param(
            b"\x00" * 7,
            None,
            "FP64",
            "field 'inputs[4].parameters.binary_data_size': 7 bytes of input 'tx_amount' are no whole "
            "number of FP64 values (8 bytes each).",
            id="not-whole-values",
        ),
        pytest.param(
            raw("FP64", [1.0]),
            None,
            "FP46",
            "field 'inputs[4].datatype': 'FP46' is no datatype of the protocol; did you mean 'FP64'?",
            id="unknown-datatype",
        ),
        pytest.param(
            raw("FP64", [float("nan")]),
            None,
            "FP64",
            "field 'inputs.tx_amount.data[0]': NaN is not a finite number (contract rule: type); "
            "send a finite number.",
            id="nan",
        ),
        pytest.param(
            raw("FP64", [-3.0]),
            None,
            "FP64",
            "field 'inputs.tx_amount.data[0]': -3.0 is below the minimum 0 (contract rule: range).",
            id="out-of-range",
        ),
        pytest.param(
            raw("FP64", [3.0, 4.0]),
            None,
            "FP64",
            "field 'inputs[4].shape': shape [1] of input 'tx_amount' does not fit its 2 values; expected "
            "[n] or [n, 1].",
            id="shape-and-bytes-disagree",
        ),
    ],
)
def test_binary_errors_are_400_naming_the_tensor(
    client: TestClient, blob: bytes, declared: int | None, datatype: str, expected: str
) -> None:
    content, headers = _with_amount_blob(blob, declared, datatype)
    assert protocol_error(client.post(INFER, content=content, headers=headers)) == expected


def test_the_header_and_each_binary_size_are_checked(client: TestClient) -> None:
    content, headers = binary_request(values(1))
    cut = content[:-11]  # tx_amount's 8 bytes and the last 3 of tx_datetime's 23
    assert protocol_error(client.post(INFER, content=cut, headers=headers)) == (
        "field 'inputs[3].parameters.binary_data_size': input 'tx_datetime' says 23 bytes; the body has "
        "20 left after the JSON header (Inference-Header-Content-Length) and the inputs before it."
    )
    bad_length = {**headers, HEADER: str(len(content) + 1)}
    assert protocol_error(client.post(INFER, content=content, headers=bad_length)) == (
        f"header 'Inference-Header-Content-Length': '{len(content) + 1}' is no length within the body of "
        f"{len(content)} bytes; it gives the size of the JSON that starts the body."
    )
    no_header = {"content-type": "application/json"}
    header_only = content[: int(headers[HEADER])]
    assert protocol_error(client.post(INFER, content=header_only, headers=no_header)) == (
        "field 'inputs[0].parameters.binary_data_size': input 'transaction_id' is binary but the request "
        "has no Inference-Header-Content-Length header; send it with the JSON's length in bytes."
    )


def test_a_bytes_element_cut_short_names_its_row(client: TestClient) -> None:
    columns = {"tx_datetime": ("BYTES", ["2026-01-20T10:00:00"])}
    blob = struct.pack("<I", 40) + b"2026-01-20"
    tensor = {
        "name": "tx_datetime",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(blob)},
    }
    others = {k: v for k, v in values(1).items() if k not in columns}
    header = orjson.dumps({"inputs": [*json_tensors(others), tensor]})
    response = client.post(INFER, content=header + blob, headers={HEADER: str(len(header))})
    assert protocol_error(response) == (
        "field 'inputs.tx_datetime.data[0]': the BYTES element says 40 bytes; 10 are left."
    )


def test_every_v2_route_answers_errors_in_the_protocols_shape(api_project: Project) -> None:
    token = secrets.token_urlsafe(32)
    serve = api_project.settings.serve.model_copy(update={"predict_token": SecretStr(token)})
    secured = api_project.with_settings(api_project.settings.model_copy(update={"serve": serve}))
    with TestClient(secured.app()) as client:
        unauthorized = client.post(INFER, json={"inputs": json_tensors(values(1))})
        assert protocol_error(unauthorized, 401) == (
            "/v2/models/fraud/infer needs a bearer token. Send the header 'Authorization: Bearer <token>'."
        )
        assert unauthorized.headers["www-authenticate"] == "Bearer"
        wrong = client.post(INFER, json={}, headers={"authorization": f"Bearer {token}x"})
        assert protocol_error(wrong, 401) == "the bearer token for /v2/models/fraud/infer is not valid."
        assert (
            protocol_error(client.get(INFER), 405)
            == "GET is not allowed on /v2/models/fraud/infer; it takes POST."
        )
        auth = {"authorization": f"Bearer {token}"}
        assert protocol_error(client.get("/v2/models/nope/ready"), 404) == (
            "model 'nope' is not served here; this server serves 'fraud'."
        )
        assert protocol_error(client.get("/v2/models/fraud/versions/9", headers=auth), 404) == (
            "version '9' of model 'fraud' is not served here; this server serves version 1. Use "
            "/v2/models/fraud/versions/1/..., or /v2/models/fraud/... for the live one."
        )
        assert protocol_error(client.post(INFER, content=b"{", headers=auth)).startswith(
            "request body is not valid JSON"
        )
        over = api_project.settings.serve.max_batch + 1
        big = {"inputs": json_tensors({"tx_amount": ("FP64", [1.0] * over)})}
        assert protocol_error(client.post(INFER, json=big, headers=auth), 413) == (
            f"batch of {over} rows is over the limit of {over - 1}."
        )
        # /v1 keeps loopml's own error shape.
        v1 = client.post("/v1/models/fraud/predict", json={})
        assert v1.status_code == 401 and v1.json()["error"]["code"] == "unauthorized"
