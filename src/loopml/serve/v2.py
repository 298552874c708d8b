"""The Open Inference Protocol (KServe v2) REST surface, over the same scoring path as ``/v1``.

Inputs are columns: one tensor per input column (``name``, ``shape`` ``[n]`` or ``[n, 1]``,
``datatype`` from the model's data contract, ``data`` row-major, flat or nested). Outputs are the
``score`` (FP64), the ``label`` (INT64) and the ``prediction_id`` (BYTES) of each row.
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
from loopml.serve.routes import (
    check_served,
    read_json,
    score_records,
    serving_model,
    validation_error,
)
from loopml.serve.state import ModelHolder, Serving

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
    """Validate the tensors against the model's contract, score each row and log each prediction."""
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
    payload = await read_json(request, config.max_body_bytes)
    serving = await serving_model(holder)
    _check_version(name, version, serving)
    try:
        infer_request = _InferRequest.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, _request_field) from None
    wanted = _requested_outputs(infer_request)
    records = _records(serving, infer_request, config.max_batch)
    try:
        parsed = serving.list_adapter.validate_python(records)
    except ValidationError as exc:
        raise validation_error(exc, _cell_field) from None
    results = score_records(recorder, serving, list(parsed))
    outputs = [
        {"name": out, "datatype": _OUTPUTS[out], "shape": [len(results)], "data": [r[out] for r in results]}
        for out in wanted
    ]
    body = {
        "model_name": name,
        "model_version": str(serving.model.version.version),
        "id": infer_request.id or str(uuid.uuid4()),
        "outputs": outputs,
    }
    return _json(body)


def _request_field(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"


def _cell_field(loc: tuple[Any, ...]) -> str:
    """``(row, column)`` of the records built from the tensors, as ``inputs.<column>.data[<row>]``."""
    if len(loc) >= 2 and isinstance(loc[0], int):
        return f"inputs.{loc[1]}.data[{loc[0]}]"
    return "inputs"


def _requested_outputs(request: _InferRequest) -> list[str]:
    if not request.outputs:
        return list(_OUTPUTS)
    for i, out in enumerate(request.outputs):
        if out.name not in _OUTPUTS:
            raise InputError(
                f"field 'outputs[{i}].name': unknown output '{out.name}'; valid: {', '.join(_OUTPUTS)}."
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
