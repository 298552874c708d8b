"""The Open Inference Protocol (KServe v2) REST surface, over the same scoring path as ``/v1``.

Every route of the protocol: server metadata, live and ready; each model's (and each version's)
metadata, ready and infer. ``infer`` takes JSON tensors or, with the ``Inference-Header-Content-Length``
header, the binary tensor data extension (:mod:`loopml.serve.v2_binary`), and answers in binary each
output asked for so (``binary_data`` on the output, or ``binary_data_output`` on the request). The
request's ``parameters`` are passed through: ``{"explain": true, "explain_k": 5}`` adds each row's
feature contributions as ``explain_*`` tensors (:mod:`loopml.serve.explain`); other parameters are
accepted. What a request means is in :mod:`loopml.serve.v2_infer`, shared with gRPC.

Errors are the protocol's: a status (``400`` for a bad request, ``404`` for a model or version not
served here, ``413`` over a limit, ``401`` without a valid token) and the body ``{"error": "<message>"}``,
the message naming the tensor (``inputs[4].datatype``, ``inputs.tx_amount.data[1]``), the value and
the rule, on every route of this router (:class:`V2Route`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from loopml.config import ServeConfig
from loopml.errors import InputError, LoopMLError, UnauthorizedError
from loopml.serve.body import parse_json, read_body, read_json
from loopml.serve.deps import (
    Recorder,
    get_holder,
    get_recorder,
    get_serve_config,
    get_shutting_down,
    server_state,
)
from loopml.serve.metrics import route_of
from loopml.serve.redact import redact_locations
from loopml.serve.routes import check_served, serving_model, validated
from loopml.serve.state import ModelHolder
from loopml.serve.v2_binary import HEADER, BinaryPart, decode_tensor, encode_tensor, split_body
from loopml.serve.v2_infer import (
    DATATYPES,
    InferRequest,
    InferResult,
    InputTensor,
    check_version,
    infer,
    model_metadata,
    model_ready,
    server_metadata,
)

__all__ = ["DATATYPES", "V2Route", "v2_error", "v2_router"]


def v2_error(exc: LoopMLError) -> tuple[int, dict[str, str]]:
    """The protocol's status and body for an error: 400 for a bad request (loopml's 422), the error's
    own status otherwise; ``{"error": "<message>"}``."""
    status = 400 if exc.http_status == 422 else exc.http_status
    return status, {"error": redact_locations(str(exc))}  # the server's paths stay in its log


class V2Route(APIRoute):
    """A route whose errors answer in the protocol's shape (``{"error": "<message>"}``), counted in the
    metrics as every error is; a method the path does not take is a 405 in the same shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer_errors_as_v2(request: Request) -> Response:
            try:
                return await handler(request)
            except LoopMLError as exc:
                server_state(request.app).metrics.error(route_of(request.scope), exc.code, request.scope)
                status, body = v2_error(exc)
                bearer = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
                return JSONResponse(body, status_code=status, headers=bearer)

        return answer_errors_as_v2

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().handle(scope, receive, send)
        except HTTPException as exc:
            if exc.status_code != 405:
                raise
            allowed = ", ".join(sorted(self.methods or ()))
            message = f"{scope['method']} is not allowed on {scope['path']}; it takes {allowed}."
            await JSONResponse({"error": message}, status_code=405, headers=exc.headers)(scope, receive, send)


v2_router = APIRouter(tags=["v2 (Open Inference Protocol)"], route_class=V2Route)
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {}}, "application/octet-stream": {"schema": {}}},
    }
}


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str = Field(max_length=16)
    data: list[Any] | None = None  # absent when the tensor's bytes follow the JSON (binary_data_size)
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


@v2_router.get("/v2", summary="Server metadata")
def v2_server_metadata() -> dict[str, Any]:
    return server_metadata()


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
def v2_model_metadata(name: str, holder: ModelHolder = Depends(get_holder)) -> Response:
    return _json(model_metadata(name, holder))


@v2_router.get("/v2/models/{name}/versions/{version}", summary="Metadata of one version of the model")
def version_metadata(name: str, version: str, holder: ModelHolder = Depends(get_holder)) -> Response:
    return _json(model_metadata(name, holder, version))


@v2_router.get("/v2/models/{name}/ready", summary="The model is loaded (503 when not)")
def v2_model_ready(
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
    ready = model_ready(name, holder, shutting_down, version)
    body: dict[str, Any] = {"name": name, "ready": ready}
    if version is not None:
        body["version"] = version
    return JSONResponse(body, status_code=200 if ready else 503)


@v2_router.post(
    "/v2/models/{name}/infer",
    summary="Score columns of inputs (Open Inference Protocol)",
    openapi_extra=_INFER_BODY,
)
async def v2_infer(
    name: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    config: ServeConfig = Depends(get_serve_config),
    recorder: Recorder = Depends(get_recorder),
) -> Response:
    """Validate the tensors against the model's contract, score each row and log each prediction.

    JSON tensors, or binary ones after the JSON with the `Inference-Header-Content-Length` header
    (each binary input's byte count in its `parameters.binary_data_size`); outputs come back in binary
    when asked (`parameters.binary_data` on an output, `parameters.binary_data_output` on the request).

    With `"parameters": {"explain": true, "explain_k": 5}` the response adds each row's feature
    contributions after the requested outputs: `explain_raw_score` and `explain_base_value` (FP64
    `[n]`), `explain_feature` (BYTES `[n, m]`) and `explain_contribution` (FP64 `[n, m]`, row-major:
    the top `explain_k` features, then `(rest)` summing the others), and `explain_class` (BYTES `[n]`)
    for a classifier; `explain_base_value + sum(explain_contribution) == explain_raw_score` per row.

    Errors: `{"error": "<message>"}` with 400 (naming the tensor, the row and the rule), 404, 413.
    """
    return await _infer(name, request, holder, config, recorder)


@v2_router.post(
    "/v2/models/{name}/versions/{version}/infer",
    summary="Score with one version of the model (404 unless it is the one served)",
    openapi_extra=_INFER_BODY,
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
    payload, binary = await _read(request, config.max_body_bytes)
    serving = await serving_model(holder)
    check_version(name, version, serving)
    body = validated(_InferRequest, payload)
    result = infer(name, serving, _request(body, binary), recorder, config.max_batch)
    return _response(result, body)


async def _read(request: Request, limit: int) -> tuple[Any, BinaryPart | None]:
    """The JSON of the request and, with the binary extension's header, the binary data after it."""
    header_length = request.headers.get(HEADER)
    if header_length is None:
        return await read_json(request, limit, nan_literals=True), None
    header, binary = split_body(await read_body(request, limit), header_length)
    return parse_json(header, nan_literals=True), BinaryPart(binary)


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in data:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def _request(body: _InferRequest, binary: BinaryPart | None) -> InferRequest:
    """The protocol's request, each tensor's values read from its JSON ``data`` or its binary bytes."""
    inputs = []
    for i, tensor in enumerate(body.inputs):
        size = (tensor.parameters or {}).get("binary_data_size")
        where = f"inputs[{i}]"
        if size is None:
            if tensor.data is None:
                raise InputError(f"field '{where}.data': Field required.")
            data = _flat(tensor.data)
        else:
            data = decode_tensor(tensor.datatype, _binary(tensor, size, where, binary), where, tensor.name)
        inputs.append(InputTensor(tensor.name, tensor.datatype, tensor.shape, data))
    if binary is not None:
        binary.finish()
    outputs = [out.name for out in body.outputs] if body.outputs else None
    return InferRequest(inputs, outputs, body.parameters or {}, body.id)


def _binary(tensor: _Tensor, size: Any, where: str, binary: BinaryPart | None) -> bytes:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InputError(f"field '{where}.parameters.binary_data_size': expected a byte count; got {size!r}.")
    if tensor.data is not None:
        raise InputError(
            f"field '{where}.data': input '{tensor.name}' has data and binary_data_size; send one."
        )
    if binary is None:
        raise InputError(
            f"field '{where}.parameters.binary_data_size': input '{tensor.name}' is binary but the request "
            f"has no {HEADER} header; send it with the JSON's length in bytes."
        )
    return binary.take(size, where, tensor.name)


def _binary_outputs(result: InferResult, body: _InferRequest) -> set[str]:
    """The outputs to answer in binary: each requested output's ``binary_data``, else the request's
    ``binary_data_output``."""
    default = (body.parameters or {}).get("binary_data_output") is True
    asked = {out.name: (out.parameters or {}).get("binary_data") for out in body.outputs or []}
    binary = set()
    for out in result.outputs:
        flag = asked.get(out.name)
        if flag is True or (flag is None and default):
            binary.add(out.name)
    return binary


def _response(result: InferResult, body: _InferRequest) -> Response:
    binary = _binary_outputs(result, body)
    outputs, parts = [], []
    for out in result.outputs:
        tensor: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        if out.name in binary:
            raw = encode_tensor(out.datatype, out.data)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            parts.append(raw)
        else:
            tensor["data"] = out.data
        outputs.append(tensor)
    answer: dict[str, Any] = {
        "model_name": result.model_name,
        "model_version": result.model_version,
        "id": result.id,
        "outputs": outputs,
    }
    if result.parameters:
        answer["parameters"] = result.parameters
    header = orjson.dumps(answer)
    if not parts:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *parts]),
        media_type="application/octet-stream",
        headers={HEADER: str(len(header))},
    )
