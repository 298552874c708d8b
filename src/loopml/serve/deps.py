"""What the routes depend on, from one place: the app's :class:`ServerState` and its ``Depends`` getters.

``create_app`` builds one :class:`ServerState` and attaches it to the app; :func:`server_state` is the
only reader of it. Routes declare what they need (``holder: ModelHolder = Depends(get_holder)``), so
a test swaps a piece with ``app.dependency_overrides[get_holder] = ...``. Each getter reads the state
itself rather than through another dependency (each one FastAPI solves costs every request some
microseconds); :func:`get_recorder` depends on :func:`get_holder`, so the recorder follows an
overridden holder. Every getter is ``async``: a plain function would cost a thread hop per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Depends, Request
from starlette.applications import Starlette

from loopml.config import ServeConfig, Settings
from loopml.scoring.forecast import ForecastSources
from loopml.serve.auth import Tokens, authorize
from loopml.serve.metrics import Metrics
from loopml.serve.shadow import ShadowScorer
from loopml.serve.state import ModelHolder
from loopml.store import PredictionLogWriter, Store

__all__ = [
    "Recorder",
    "Runtime",
    "ServerState",
    "attach",
    "authorized",
    "get_failure_holder",
    "get_forecast_sources",
    "get_holder",
    "get_metrics",
    "get_prediction_log",
    "get_recorder",
    "get_serve_config",
    "get_settings",
    "get_shutting_down",
    "get_store",
    "server_state",
]


@dataclass
class Runtime:
    """The parts of the server state that change while it runs: the lifespan starts the prediction
    log writer (None when ``serve.log_predictions`` is off) and the shadow scorer (None unless
    ``retrain.shadow``), and shutdown (or SIGTERM) sets ``shutting_down``."""

    prediction_log: PredictionLogWriter | None = None
    shadow: ShadowScorer | None = None
    shutting_down: bool = False


@dataclass(frozen=True)
class ServerState:
    """Everything the routes of one app share, made once by ``create_app``."""

    settings: Settings
    store: Store
    tokens: Tokens
    metrics: Metrics
    holder: ModelHolder
    failure_holder: ModelHolder  # the maintenance failure model, beside the project's own (the RUL)
    forecast_sources: ForecastSources
    runtime: Runtime = field(default_factory=Runtime)


@dataclass(frozen=True)
class Recorder:
    """Where an answered request's predictions go: the prediction log, the shadow scorer, the
    metrics, and the alias the model is served under (for the model-info metric)."""

    prediction_log: PredictionLogWriter | None
    shadow: ShadowScorer | None
    metrics: Metrics
    alias: str


_ATTRIBUTE = "loopml"


def attach(app: Starlette, state: ServerState) -> None:
    """Store ``state`` on ``app`` (done once, by ``create_app``)."""
    setattr(app.state, _ATTRIBUTE, state)


def server_state(app: Starlette) -> ServerState:
    """The state ``create_app`` attached to ``app`` (for middleware, exception handlers and the runner)."""
    state = getattr(app.state, _ATTRIBUTE, None)
    if not isinstance(state, ServerState):
        raise RuntimeError("this app has no loopml server state; build it with loopml.serve.create_app.")
    return state


def _state(request: Request) -> ServerState:
    return server_state(request.app)


async def get_settings(request: Request) -> Settings:
    """The whole project file (for a route that needs more than its ``serve`` section)."""
    return _state(request).settings


async def get_serve_config(request: Request) -> ServeConfig:
    """The ``serve`` section: body and batch limits, the alias served, the tokens' settings."""
    return _state(request).settings.serve


async def get_store(request: Request) -> Store:
    return _state(request).store


async def get_metrics(request: Request) -> Metrics:
    return _state(request).metrics


async def get_holder(request: Request) -> ModelHolder:
    """The holder of the model the server serves (it follows ``serve.alias``)."""
    return _state(request).holder


async def get_failure_holder(request: Request) -> ModelHolder:
    """The holder of the maintenance failure model, served beside the project's own (the RUL)."""
    return _state(request).failure_holder


async def get_forecast_sources(request: Request) -> ForecastSources:
    return _state(request).forecast_sources


async def get_prediction_log(request: Request) -> PredictionLogWriter | None:
    """The prediction log writer the lifespan started (None when ``serve.log_predictions`` is off)."""
    return _state(request).runtime.prediction_log


async def get_shutting_down(request: Request) -> bool:
    return _state(request).runtime.shutting_down


async def get_recorder(request: Request, holder: ModelHolder = Depends(get_holder)) -> Recorder:
    """Where this request's predictions go; the alias is the one of the holder that served them."""
    state = _state(request)
    return Recorder(state.runtime.prediction_log, state.runtime.shadow, state.metrics, holder.alias)


async def authorized(request: Request) -> None:
    """App-wide dependency: :func:`~loopml.serve.auth.authorize` with the app's tokens."""
    authorize(request, _state(request).tokens)
