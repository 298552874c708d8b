"""The forecast route: a product (and region) and a horizon in, demand per future period out.

Forecasts come from the latest data version (so each newly ingested week moves the origin forward)
through :mod:`loopml.scoring.forecast`, the one scoring path of the API and of batch forecasts. Each
step is logged as a prediction whose event time is its period, so the actual demand of that period,
sent later as feedback, is joined to it by the monitor.
"""

from __future__ import annotations

import uuid
from datetime import date

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from loopml.scoring import LoadedModel
from loopml.scoring.forecast import (
    ForecastRequest,
    ForecastSources,
    forecast_outputs,
    forecast_record,
    select_steps,
)
from loopml.serve.metrics import Metrics
from loopml.serve.routes import check_served, get_holder, serving_model
from loopml.serve.state import ModelHolder
from loopml.store import PredictionLogWriter, utcnow

__all__ = ["ForecastResponse", "ForecastStep", "forecast_router"]

forecast_router = APIRouter(tags=["forecast"])


class ForecastStep(BaseModel):
    """One future period's forecast."""

    step: int
    period: date
    forecast: float
    prediction_id: str


class ForecastResponse(BaseModel):
    """Forecasts of one series from the newest complete period (``origin``)."""

    model: str
    model_version: int
    item: str
    group: str
    origin: date
    steps: list[ForecastStep]


def _sources(request: Request) -> ForecastSources:
    found: ForecastSources | None = getattr(request.app.state, "forecast_sources", None)
    if found is None:
        found = request.app.state.forecast_sources = ForecastSources()
    return found


def _log(request: Request, model: LoadedModel, rows: pd.DataFrame, values: np.ndarray) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(len(rows))]
    writer: PredictionLogWriter | None = request.app.state.prediction_log
    if writer is not None:
        now = utcnow()
        records = zip(ids, rows.to_dict("records"), forecast_outputs(rows, values), strict=True)
        writer.submit([forecast_record(model, i, row, out, now) for i, row, out in records])
    metrics: Metrics = request.app.state.metrics
    metrics.serving(model.name, model.version.version, request.app.state.holder.alias)
    metrics.observe_scores(model.name, [float(v) for v in values])
    return ids


@forecast_router.post(
    "/v1/models/{name}/forecast",
    response_model=ForecastResponse,
    summary="Forecast one product's demand for the next periods",
)
async def forecast(
    name: str, body: ForecastRequest, request: Request, holder: ModelHolder = Depends(get_holder)
) -> ForecastResponse:
    """Demand of ``item`` (in ``group``) for each of the next ``horizon`` periods, each step logged."""
    check_served(name, holder)
    serving = await serving_model(holder)
    model = serving.model
    settings = request.app.state.settings
    stock = settings.forecast.stock if settings.forecast is not None else None
    path = None if stock is None else settings.project_dir / stock
    source = await run_in_threadpool(_sources(request).get, request.app.state.store, model, path)
    rows, group = select_steps(source, body)
    values = model.score(rows)
    ids = _log(request, model, rows, values)
    steps = [
        ForecastStep(step=int(h), period=pd.Timestamp(p).date(), forecast=float(v), prediction_id=i)
        for h, p, v, i in zip(rows["horizon"], rows["period"], values, ids, strict=True)
    ]
    return ForecastResponse(
        model=name,
        model_version=model.version.version,
        item=body.item,
        group=group,
        origin=source.origin.date(),
        steps=steps,
    )
