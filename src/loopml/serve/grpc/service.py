"""The ``inference.GRPCInferenceService`` of the Open Inference Protocol, over the REST API's state.

Each RPC reads the app's :class:`~loopml.serve.deps.ServerState`: the same model holder (so gRPC and
REST serve the same version and follow the alias together), the same tokens (each RPC needs what its
REST route needs: ``ModelInfer`` the ``serve.predict_token`` when one is set, the metadata RPCs a
token unless ``serve.public_routes`` opens ``v2_metadata``, the health RPCs none; sent as the
metadata ``authorization: Bearer <token>``), the same prediction log, shadow scorer and metrics
(:func:`~loopml.serve.routes.score_records`), and the same access log (``loopml.access``, ``method``
``GRPC``, ``path`` the RPC, ``status`` its status code). A :class:`~loopml.errors.LoopMLError` is the
RPC's status (``INVALID_ARGUMENT`` for a bad request, ``NOT_FOUND``, ``RESOURCE_EXHAUSTED`` over a
limit, ``UNAUTHENTICATED``, ``UNAVAILABLE``) with the message REST's ``{"error": ...}`` carries.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loopml.errors import LoopMLError, UnauthorizedError
from loopml.serve.access import access_log
from loopml.serve.auth import PREDICT_ROUTES, ROUTE_GROUPS
from loopml.serve.deps import Recorder, ServerState
from loopml.serve.grpc.codec import decode_request, encode_response
from loopml.serve.grpc.proto import SERVICE, messages
from loopml.serve.redact import redact_locations
from loopml.serve.routes import check_served, serving_model
from loopml.serve.v2_infer import check_version, infer, model_metadata, model_ready, server_metadata

__all__ = ["RPCS", "V2Service", "status_of"]

log = logging.getLogger(__name__)

# Each RPC: (the method of V2Service that answers it, its request message, its response message,
# the REST route whose access rules it follows).
RPCS = {
    "ServerLive": ("server_live", "ServerLiveRequest", "ServerLiveResponse", "/v2/health/live"),
    "ServerReady": ("server_ready", "ServerReadyRequest", "ServerReadyResponse", "/v2/health/ready"),
    "ModelReady": ("model_ready", "ModelReadyRequest", "ModelReadyResponse", "/v2/models/{name}/ready"),
    "ServerMetadata": ("server_metadata", "ServerMetadataRequest", "ServerMetadataResponse", "/v2"),
    "ModelMetadata": ("model_metadata", "ModelMetadataRequest", "ModelMetadataResponse", "/v2/models/{name}"),
    "ModelInfer": ("model_infer", "ModelInferRequest", "ModelInferResponse", "/v2/models/{name}/infer"),
}
_GROUP_OF = {path: group for group, paths in ROUTE_GROUPS.items() for path in paths}
# loopml's HTTP status of an error -> the gRPC status code's name
_STATUS = {
    400: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    413: "RESOURCE_EXHAUSTED",
    404: "NOT_FOUND",
    401: "UNAUTHENTICATED",
    409: "FAILED_PRECONDITION",
    503: "UNAVAILABLE",
}


def status_of(exc: LoopMLError) -> str:
    """The name of the gRPC status code that answers ``exc``."""
    return _STATUS.get(exc.http_status, "INTERNAL")


class V2Service:
    """The RPCs, each ``async (request, context) -> response``, sharing the app's state."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.classes = messages()

    async def server_live(self, request: Any, context: Any) -> Any:
        return self.classes["ServerLiveResponse"](live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        ready = not self.state.runtime.shutting_down and self.state.holder.ready
        return self.classes["ServerReadyResponse"](ready=ready)

    async def model_ready(self, request: Any, context: Any) -> Any:
        ready = model_ready(
            request.name, self.state.holder, self.state.runtime.shutting_down, request.version
        )
        return self.classes["ModelReadyResponse"](ready=ready)

    async def server_metadata(self, request: Any, context: Any) -> Any:
        return self.classes["ServerMetadataResponse"](**server_metadata())

    async def model_metadata(self, request: Any, context: Any) -> Any:
        body = model_metadata(request.name, self.state.holder, request.version or None)
        return self.classes["ModelMetadataResponse"](**body)

    async def model_infer(self, request: Any, context: Any) -> Any:
        holder, runtime = self.state.holder, self.state.runtime
        check_served(request.model_name, holder)
        serving = await serving_model(holder)
        check_version(request.model_name, request.model_version, serving)
        recorder = Recorder(runtime.prediction_log, runtime.shadow, self.state.metrics, holder.alias)
        max_batch = self.state.settings.serve.max_batch
        result = infer(request.model_name, serving, decode_request(request), recorder, max_batch)
        return encode_response(result, raw=bool(request.raw_input_contents))

    def authorize(self, rpc: str, context: Any) -> None:
        """The token the RPC's REST route needs, as ``authorization: Bearer <token>`` metadata."""
        needed = self._tokens_for(RPCS[rpc][3])
        if not needed:
            return
        header = dict(context.invocation_metadata() or ()).get("authorization", "")
        scheme, _, credentials = str(header).partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise UnauthorizedError(
                f"{rpc} needs a bearer token.", hint="Send the metadata 'authorization: Bearer <token>'."
            )
        sent = credentials.strip().encode()
        if not any([hmac.compare_digest(sent, token) for token in needed]):  # each in constant time
            raise UnauthorizedError(f"the bearer token for {rpc} is not valid.")

    def _tokens_for(self, route: str) -> tuple[bytes, ...]:
        """The tokens any one of which opens ``route`` (none: it is open), as REST's ``authorize``."""
        tokens = self.state.tokens
        if route in PREDICT_ROUTES:
            return (tokens.predict,) if tokens.predict is not None else ()
        group = _GROUP_OF[route]
        return () if group in tokens.public else tokens.opening(group)


Handler = Callable[[Any, Any], Awaitable[Any]]


def answered(grpc: Any, service: V2Service, rpc: str) -> Handler:
    """The RPC's method of ``service``, authorized, with its errors as gRPC statuses and each call in
    the access log and the metrics (``loopml_grpc_requests_total``, ``..._duration_seconds``)."""
    path, handler = f"/{SERVICE}/{rpc}", getattr(service, RPCS[rpc][0])
    metrics = service.state.metrics

    def record(request: Any, context: Any, status: str, started: float) -> None:
        # before the answer goes out: a client that has its answer finds the call counted and logged
        seconds = time.perf_counter() - started
        metrics.grpc_call(rpc, status, _model_of(request), seconds)
        _log_call(path, status, seconds * 1000, context)

    async def call(request: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            service.authorize(rpc, context)
            response = await handler(request, context)
        except LoopMLError as exc:
            status, message = status_of(exc), redact_locations(str(exc))
        except Exception:
            log.exception("gRPC %s failed", rpc)
            status, message = "INTERNAL", f"{rpc} failed; the server's log has the cause."
        else:
            record(request, context, "OK", started)
            return response
        record(request, context, status, started)
        await context.abort(getattr(grpc.StatusCode, status), message)

    return call


def _model_of(request: Any) -> str:
    """The model a request is about (``model_name`` of an infer, ``name`` of a model RPC), else ``""``."""
    for field in ("model_name", "name"):
        if field in type(request).DESCRIPTOR.fields_by_name:
            return str(getattr(request, field))
    return ""


def _log_call(path: str, status: str, duration_ms: float, context: Any) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields = {"method": "GRPC", "path": path, "status": status, "duration_ms": round(duration_ms, 3)}
    peer = context.peer() if hasattr(context, "peer") else None
    if peer:
        fields["client"] = peer
    access_log.info("GRPC %s %s %.2f ms", path, status, duration_ms, extra=fields)


def generic_handler(grpc: Any, state: ServerState) -> Any:
    """The service's RPCs as one ``grpc.GenericRpcHandler`` for a ``grpc.aio`` server."""
    service, classes = V2Service(state), messages()
    handlers = {
        rpc: grpc.unary_unary_rpc_method_handler(
            answered(grpc, service, rpc),
            request_deserializer=classes[request].FromString,
            response_serializer=classes[response].SerializeToString,
        )
        for rpc, (_, request, response, _) in RPCS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
