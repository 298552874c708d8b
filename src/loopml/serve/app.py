"""The app factory: ``create_app(settings)`` builds the prediction API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from loopml.actions import enqueue_for_predictions
from loopml.config import Settings, failure_model_name
from loopml.errors import InputError, LoopMLError, UnauthorizedError
from loopml.scoring.forecast import ForecastSources
from loopml.serve.access import AccessLogMiddleware
from loopml.serve.admin import admin_router
from loopml.serve.auth import ADMIN_ROUTES, PREDICT_ROUTES, PROTECTED_ROUTES, PUBLIC_ROUTES, DocsGuard, Tokens
from loopml.serve.body import BodyDeadline
from loopml.serve.deps import ServerState, attach, authorized
from loopml.serve.docs import docs_router
from loopml.serve.forecast import forecast_router
from loopml.serve.gauges import StoreGauges
from loopml.serve.maintenance import maintenance_router
from loopml.serve.metrics import Metrics, MetricsMiddleware, replica_id, route_of, score_buckets
from loopml.serve.openapi import install_openapi
from loopml.serve.recommend import recommend_router
from loopml.serve.redact import redact_locations
from loopml.serve.routes import health_router, metrics_router, predict_router
from loopml.serve.shadow import ShadowScorer
from loopml.serve.state import ModelHolder, open_prediction_log
from loopml.serve.v2 import v2_router
from loopml.store import Store, open_store
from loopml.tasks import get_task
from loopml.validate import ScoringPolicy

__all__ = ["ADMIN_ROUTES", "PREDICT_ROUTES", "PROTECTED_ROUTES", "PUBLIC_ROUTES", "create_app"]

log = logging.getLogger(__name__)


def _error_response(metrics: Metrics, request: Request, exc: LoopMLError) -> JSONResponse:
    metrics.error(route_of(request.scope), exc.code, request.scope)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    body = exc.to_dict()
    body["message"] = redact_locations(body["message"])  # the server's paths stay in its log
    if body["message"] != str(exc):
        log.warning("%s %s answered %s: %s", request.method, request.url.path, exc.http_status, exc)
    return JSONResponse({"error": body}, status_code=exc.http_status, headers=headers)


_ROUTING = {
    404: ("not_found", "no route {where}; the routes are listed at /docs and /openapi.json."),
    405: ("method_not_allowed", "{method} is not allowed on {path}; each route's methods are at /docs."),
}


def _routing_error(metrics: Metrics, request: Request, exc: HTTPException) -> JSONResponse:
    """An unknown path or a method the path does not take, in the same JSON shape as every error."""
    code, template = _ROUTING.get(exc.status_code, ("http_error", "{detail}"))
    method, path = request.method, request.url.path
    message = template.format(where=f"{method} {path}", method=method, path=path, detail=exc.detail)
    metrics.error(route_of(request.scope), code, request.scope)
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=exc.status_code, headers=exc.headers
    )


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the API for the project's model, following the alias ``settings.serve.alias``.

    Refuses (:class:`~loopml.errors.ConfigError`) an empty or weak token, and admin routes without one.
    """
    state = _server_state(settings, store)
    runtime, metrics = state.runtime, state.metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.holder.check_start)  # a champion it cannot serve is logged now
        # actions matching a prediction are written in the same transaction as its log record
        writer = open_prediction_log(
            settings, state.store, on_write=enqueue_for_predictions(settings.actions)
        )
        runtime.prediction_log = writer
        # retrain.shadow: a shadowing challenger scores each request after it was answered
        shadow = None
        if settings.retrain.shadow:  # its window features from the replicas' shared state, if any
            shadow = ShadowScorer(state.store, settings.name, online_url=settings.serve.online_store)
        runtime.shadow = shadow
        try:
            yield
        finally:
            runtime.shutting_down = True
            if shadow is not None:
                shadow.close()
            if writer is not None:
                writer.close()
            metrics.close()  # a worker's live gauges leave the multiprocess sums

    app = FastAPI(
        title=f"loopml: {settings.name}",
        version="1",
        lifespan=lifespan,
        dependencies=[Depends(authorized)],
        docs_url=None,  # docs_router serves /docs and /redoc with their assets (no CDN)
        redoc_url=None,
    )
    attach(app, state)
    install_openapi(app, state.holder, ScoringPolicy.of(settings), settings.serve.max_batch)
    for router in (
        docs_router,
        predict_router,
        v2_router,
        health_router,
        metrics_router,
        maintenance_router,
        forecast_router,
        recommend_router,
    ):
        app.include_router(router)
    if state.tokens.admin_enabled(settings.serve):
        app.include_router(admin_router)
    app.add_middleware(BodyDeadline, timeout=settings.serve.body_timeout)  # innermost: a slow body is 408
    app.add_middleware(DocsGuard, tokens=state.tokens)  # the docs pages are no API routes
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AccessLogMiddleware)  # outermost: times and logs every request

    @app.exception_handler(LoopMLError)
    async def _loopml_error(request: Request, exc: LoopMLError) -> JSONResponse:
        return _error_response(metrics, request, exc)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Routing errors (an unknown path, a method the path does not take) in the same JSON shape.
        return _routing_error(metrics, request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = list(exc.errors())
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "request"
        message = f"field '{where}': {errors[0]['msg'] if errors else 'invalid'}."
        return _error_response(metrics, request, InputError(message))

    return app


def _server_state(settings: Settings, store: Store | None) -> ServerState:
    """The state the routes share (refusing an empty or weak token before anything is opened)."""
    tokens = Tokens.from_config(settings.serve)
    store = store or open_store(settings.db_url, settings.artifacts_url, settings.store.artifacts_options)
    alias, policy = settings.serve.alias, ScoringPolicy.of(settings)
    online = settings.serve.online_store  # window features' state shared by the replicas (or None)
    holder = ModelHolder(store, settings.name, alias, policy=policy, online_url=online)
    failure_holder = ModelHolder(store, failure_model_name(settings), alias, policy=policy, online_url=online)
    # scaled out (a shared online state): every sample says which replica it comes from
    replica = replica_id() if online else None
    metrics = Metrics(score_buckets(get_task(settings.task).score_bounds), replica=replica)
    metrics.add_collector(StoreGauges(store, lambda: (holder.name, failure_holder.name)))
    return ServerState(
        settings=settings,
        store=store,
        tokens=tokens,
        metrics=metrics,
        holder=holder,
        failure_holder=failure_holder,
        forecast_sources=ForecastSources(),
    )
