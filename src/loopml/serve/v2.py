"""The Open Inference Protocol (KServe v2) REST surface, over the same scoring path as ``/v1``.

Inputs are columns: one tensor per input column (``name``, ``shape`` ``[n]`` or ``[n, 1]``,
``datatype`` from the model's data contract, ``data`` row-major, flat or nested). Outputs are the
``score`` (FP64), the ``label`` (INT64) and the ``prediction_id`` (BYTES) of each row; with the
request's ``parameters`` ``{"explain": true, "explain_k": 5}``, also each row's feature contributions
as ``explain_*`` tensors (see :mod:`loopml.serve.explain`). The rows are checked against the data
contract as ``/v1``'s records are (:mod:`loopml.serve.schema`); the id column, sent as an input, comes
back as an output of the same name, and values scored as missing (``on_unknown_category: missing``)
are listed in the response's ``parameters.scored_as_missing``.
"""

from __future__ import annotations

import math
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml.config import ServeConfig
from loopml.errors import InputError, NotFoundError, PayloadTooLargeError
from loopml.serve.deps import Recorder, get_holder, get_recorder, get_serve_config, get_shutting_down
from loopml.serve.explain import explain_parameters, explanation_tensors
from loopml.serve.routes import (
    check_served,
    read_json,
    score_records,
    serving_model,
    validation_error,
)
from loopml.serve.state import ModelHolder, Serving
from loopml.validate import Violation, violations_error

__all__ = ["DATATYPES", "v2_router"]

v2_router = APIRouter(tags=["v2 (Open Inference Protocol)"])

# The datatype each contract type is served as, and the ones a client may send for it.
DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES", "datetime": "BYTES"}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_ACCEPTED = {
    "int": _INTS,
    "float": _INTS | {"FP16", "FP32", "FP64"},
    "bool": {"BOOL"},
    "string": {"BYTES"},
    "datetime": {"BYTES"},
}
_OUTPUTS = {"score": "FP64", "label": "INT64", "prediction_id": "BYTES"}


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str = Field(max_length=16)
    data: list[Any]
    parameters: dict[str, Any] | None = None


class _RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class _InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[_Tensor] = Field(min_length=1)
    outputs: list[_RequestedOutput] | None = None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _served(name: str, holder: ModelHolder, version: str | None = None) -> Serving:
    check_served(name, holder)
    serving = holder.get()
    _check_version(name, version, serving)
    return serving


def _check_version(name: str, version: str | None, serving: Serving) -> None:
    served = str(serving.model.version.version)
    if version is not None and version != served:
        raise NotFoundError(
            f"version '{version}' of model '{name}' is not served here; this server serves version {served}.",
            hint=f"Use /v2/models/{name}/versions/{served}/..., or /v2/models/{name}/... for the live one.",
        )


def _package_version() -> str:
    try:
        return version("loopml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


@v2_router.get("/v2", summary="Server metadata")
def server_metadata() -> dict[str, Any]:
    return {"name": "loopml", "version": _package_version(), "extensions": []}


@v2_router.get("/v2/health/live", summary="The server is live")
def v2_live() -> dict[str, bool]:
    return {"live": True}


@v2_router.get("/v2/health/ready", summary="The server is ready (503 when not)")
def v2_ready(
    holder: ModelHolder = Depends(get_holder), shutting_down: bool = Depends(get_shutting_down)
) -> JSONResponse:
    ready = not shutting_down and holder.ready
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@v2_router.get("/v2/models/{name}", summary="Model metadata: inputs and outputs with their datatypes")
def model_metadata(name: str, holder: ModelHolder = Depends(get_holder)) -> Response:
    return _metadata(name, holder)


@v2_router.get("/v2/models/{name}/versions/{version}", summary="Metadata of one version of the model")
def version_metadata(name: str, version: str, holder: ModelHolder = Depends(get_holder)) -> Response:
    return _metadata(name, holder, version)


def _metadata(name: str, holder: ModelHolder, version: str | None = None) -> Response:
    model = _served(name, holder, version).model
    contract = model.contract
    inputs = [
        {"name": c, "datatype": DATATYPES[contract.column(c).dtype], "shape": [-1]}
        for c in model.input_columns
    ]
    outputs = [{"name": n, "datatype": t, "shape": [-1]} for n, t in _OUTPUTS.items()]
    body = {
        "name": name,
        "versions": [str(model.version.version)],
        "platform": "loopml",
        "inputs": inputs,
        "outputs": outputs,
    }
    return _json(body)


@v2_router.get("/v2/models/{name}/ready", summary="The model is loaded (503 when not)")
def model_ready(
    name: str,
    holder: ModelHolder = Depends(get_holder),
    shutting_down: bool = Depends(get_shutting_down),
) -> JSONResponse:
    return _ready(name, holder, shutting_down)


@v2_router.get("/v2/models/{name}/versions/{version}/ready", summary="That version is loaded (503 when not)")
def version_ready(
    name: str,
    version: str,
    holder: ModelHolder = Depends(get_holder),
    shutting_down: bool = Depends(get_shutting_down),
) -> JSONResponse:
    return _ready(name, holder, shutting_down, version)


def _ready(name: str, holder: ModelHolder, shutting_down: bool, version: str | None = None) -> JSONResponse:
    check_served(name, holder)
    ready = not shutting_down and holder.ready
    if ready and version is not None:
        ready = version == str(holder.get().model.version.version)
    body: dict[str, Any] = {"name": name, "ready": ready}
    if version is not None:
        body["version"] = version
    return JSONResponse(body, status_code=200 if ready else 503)


@v2_router.post(
    "/v2/models/{name}/infer",
    summary="Score columns of inputs (Open Inference Protocol)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
async def infer(
    name: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    config: ServeConfig = Depends(get_serve_config),
    recorder: Recorder = Depends(get_recorder),
) -> Response:
    """Validate the tensors against the model's contract, score each row and log each prediction.

    With `"parameters": {"explain": true, "explain_k": 5}` the response adds each row's feature
    contributions after the requested outputs: `explain_raw_score` and `explain_base_value` (FP64
    `[n]`), `explain_feature` (BYTES `[n, m]`) and `explain_contribution` (FP64 `[n, m]`, row-major:
    the top `explain_k` features, then `(rest)` summing the others), and `explain_class` (BYTES `[n]`)
    for a classifier; `explain_base_value + sum(explain_contribution) == explain_raw_score` per row.
    """
    return await _infer(name, request, holder, config, recorder)


@v2_router.post(
    "/v2/models/{name}/versions/{version}/infer",
    summary="Score with one version of the model (404 unless it is the one served)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
async def version_infer(
    name: str,
    version: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    config: ServeConfig = Depends(get_serve_config),
    recorder: Recorder = Depends(get_recorder),
) -> Response:
    """As ``/v2/models/{name}/infer``, refused with 404 unless ``version`` is the version served."""
    return await _infer(name, request, holder, config, recorder, version)


async def _infer(
    name: str,
    request: Request,
    holder: ModelHolder,
    config: ServeConfig,
    recorder: Recorder,
    version: str | None = None,
) -> Response:
    check_served(name, holder)
    payload = await read_json(request, config.max_body_bytes, nan_literals=True)
    serving = await serving_model(holder)
    _check_version(name, version, serving)
    try:
        infer_request = _InferRequest.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, _request_field) from None
    types = _output_types(serving, infer_request)
    wanted = _requested_outputs(infer_request, types)
    explain = explain_parameters(infer_request.parameters)
    records = _records(serving, infer_request, config.max_batch)
    parsed, violations = serving.checker.check(records)
    if violations:
        raise _contract_error(violations, infer_request)
    results = score_records(recorder, serving, parsed, explain)
    outputs = [
        {"name": out, "datatype": types[out], "shape": [len(results)], "data": [r[out] for r in results]}
        for out in wanted
    ]
    if explain:
        outputs += explanation_tensors(results)
    body: dict[str, Any] = {
        "model_name": name,
        "model_version": str(serving.model.version.version),
        "id": infer_request.id or str(uuid.uuid4()),
        "outputs": outputs,
    }
    missing = [
        {"row": row, "input": column, "value": value}
        for row, found in enumerate(parsed.as_missing)
        for column, value in (found or {}).items()
    ]
    if missing:
        body["parameters"] = {"scored_as_missing": missing}
    return _json(body)


def _request_field(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"


def _contract_error(violations: list[Violation], request: _InferRequest) -> InputError:
    """v2's answer to rows that break the model's data contract (the one place that builds it): a 422
    naming ``inputs.<column>.data[<row>]`` (or ``inputs[<i>].name`` for an input that is no column of
    the contract, once), the value and the rule, with ``details`` as /v1 has them."""
    index = {tensor.name: i for i, tensor in enumerate(request.inputs)}

    def field(v: Violation) -> str:
        if v.rule == "extra_field":
            return f"inputs[{index[v.column]}].name"
        return f"inputs.{v.column}.data[{v.row}]"

    named = {field(v): v for v in reversed(violations)}  # an unknown input once, at its first row
    return violations_error([v for v in violations if named.get(field(v)) is v], field)


def _output_types(serving: Serving, request: _InferRequest) -> dict[str, str]:
    """The outputs a request may ask for, with their datatypes: the id column too when it is an input
    (each row's id, echoed)."""
    id_column = serving.model.contract.id_column
    if id_column is None or all(tensor.name != id_column for tensor in request.inputs):
        return _OUTPUTS
    return {**_OUTPUTS, id_column: DATATYPES[serving.model.contract.column(id_column).dtype]}


def _requested_outputs(request: _InferRequest, types: dict[str, str]) -> list[str]:
    if not request.outputs:
        return list(types)
    for i, out in enumerate(request.outputs):
        if out.name not in types:
            raise InputError(
                f"field 'outputs[{i}].name': unknown output '{out.name}'; valid: {', '.join(types)}."
            )
    return [out.name for out in request.outputs]


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in data:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def _records(serving: Serving, request: _InferRequest, max_batch: int) -> list[dict[str, Any]]:
    """One record per row from the column tensors, checking names, shapes and datatypes."""
    contract, known = serving.model.contract, set(serving.model.contract.names)
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for i, tensor in enumerate(request.inputs):
        where = f"inputs[{i}]"
        if tensor.name in columns:
            raise InputError(f"field '{where}.name': input '{tensor.name}' is given twice.")
        data = _flat(tensor.data)
        if tensor.name in known:
            dtype = contract.column(tensor.name).dtype
            if tensor.datatype not in _ACCEPTED[dtype]:
                raise InputError(
                    f"field '{where}.datatype': input '{tensor.name}' is {DATATYPES[dtype]} "
                    f"(accepted: {', '.join(sorted(_ACCEPTED[dtype]))}); got '{tensor.datatype}'."
                )
        n = tensor.shape[0]
        if (
            any(d < 0 for d in tensor.shape)
            or math.prod(tensor.shape) != len(data)
            or tensor.shape[1:] not in ([], [1])
        ):
            raise InputError(
                f"field '{where}.shape': shape {tensor.shape} of input '{tensor.name}' does not fit its "
                f"{len(data)} values; expected [n] or [n, 1]."
            )
        if rows is not None and n != rows:
            raise InputError(f"field '{where}.shape': input '{tensor.name}' has {n} rows, the others {rows}.")
        rows = n
        columns[tensor.name] = data
    if not rows:
        raise InputError("field 'inputs': the tensors hold no rows.")
    if rows > max_batch:
        raise PayloadTooLargeError(f"batch of {rows} rows is over the limit of {max_batch}.")
    return [{name: values[r] for name, values in columns.items()} for r in range(rows)]
