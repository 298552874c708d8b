"""The app factory: ``create_app(settings)`` builds the prediction API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from loopml.config import Settings
from loopml.errors import InputError, LoopMLError
from loopml.serve.routes import health_router, predict_router
from loopml.serve.state import ModelHolder
from loopml.store import PredictionLogWriter, Store, open_store

__all__ = ["PUBLIC_ROUTES", "create_app"]

# Every route is classified; a test fails on a route that is in neither set.
PUBLIC_ROUTES = frozenset(
    {
        "/health/live",
        "/health/ready",
        "/v1/models/{name}/predict",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
PROTECTED_ROUTES: frozenset[str] = frozenset()


def _error_response(exc: LoopMLError) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the API for the project's model, following the alias ``settings.serve.alias``."""
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

    app = FastAPI(title=f"loopml: {settings.name}", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.holder = ModelHolder(store, settings.name, settings.serve.alias)
    app.state.prediction_log = None
    app.state.shutting_down = False
    app.include_router(predict_router)
    app.include_router(health_router)

    @app.exception_handler(LoopMLError)
    async def _loopml_error(_request: Request, exc: LoopMLError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = list(exc.errors())
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "request"
        return _error_response(InputError(f"{where}: {errors[0]['msg'] if errors else 'invalid'}."))

    return app
