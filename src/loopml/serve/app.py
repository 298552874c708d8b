"""The app factory: ``create_app(settings)`` builds the prediction API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from loopml.config import Settings
from loopml.errors import InputError, LoopMLError, UnauthorizedError
from loopml.serve.admin import admin_router
from loopml.serve.auth import (
    ADMIN_ROUTES,
    PREDICT_ROUTES,
    PROTECTED_ROUTES,
    PUBLIC_ROUTES,
    Tokens,
    authorize,
)
from loopml.serve.metrics import Metrics, MetricsMiddleware, metrics_router, route_of
from loopml.serve.routes import health_router, predict_router
from loopml.serve.state import ModelHolder
from loopml.serve.v2 import v2_router
from loopml.store import PredictionLogWriter, Store, open_store

__all__ = ["ADMIN_ROUTES", "PREDICT_ROUTES", "PROTECTED_ROUTES", "PUBLIC_ROUTES", "create_app"]


def _error_response(request: Request, exc: LoopMLError) -> JSONResponse:
    metrics: Metrics = request.app.state.metrics
    metrics.error(route_of(request.scope), exc.code)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the API for the project's model, following the alias ``settings.serve.alias``.

    Refuses (:class:`~loopml.errors.ConfigError`) an empty or weak token, and admin routes without one.
    """
    tokens = Tokens.from_config(settings.serve)
    store = store or open_store(settings.db_url, settings.artifacts_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer = PredictionLogWriter(store.engine) if settings.serve.log_predictions else None
        app.state.prediction_log = writer
        try:
            yield
        finally:
            app.state.shutting_down = True
            if writer is not None:
                writer.close()

    app = FastAPI(
        title=f"loopml: {settings.name}", version="1", lifespan=lifespan, dependencies=[Depends(authorize)]
    )
    app.state.settings = settings
    app.state.store = store
    app.state.tokens = tokens
    app.state.metrics = Metrics()
    app.state.holder = ModelHolder(store, settings.name, settings.serve.alias)
    app.state.prediction_log = None
    app.state.shutting_down = False
    for router in (predict_router, v2_router, health_router, metrics_router):
        app.include_router(router)
    if tokens.admin_enabled(settings.serve):
        app.include_router(admin_router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    @app.exception_handler(LoopMLError)
    async def _loopml_error(request: Request, exc: LoopMLError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = list(exc.errors())
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "request"
        message = f"field '{where}': {errors[0]['msg'] if errors else 'invalid'}."
        return _error_response(request, InputError(message))

    return app
