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

from loopml.config import Settings
from loopml.scoring import LoadedModel
from loopml.scoring.forecast import (
    ForecastRequest,
    ForecastSources,
    forecast_outputs,
    forecast_record,
    select_steps,
)
from loopml.serve.deps import (
    Recorder,
    get_forecast_sources,
    get_holder,
    get_recorder,
    get_settings,
    get_store,
)
from loopml.serve.routes import check_served, read_json, serving_model, validated
from loopml.serve.state import ModelHolder
from loopml.store import Store, utcnow

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


def _log(recorder: Recorder, model: LoadedModel, rows: pd.DataFrame, values: np.ndarray) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(len(rows))]
    writer = recorder.prediction_log
    if writer is not None:
        now = utcnow()
        records = zip(ids, rows.to_dict("records"), forecast_outputs(rows, values), strict=True)
        writer.submit([forecast_record(model, i, row, out, now) for i, row, out in records])
    recorder.metrics.serving(model.name, model.version.version, recorder.alias)
    recorder.metrics.observe_scores(model.name, [float(v) for v in values])
    return ids


@forecast_router.post(
    "/v1/models/{name}/forecast",
    response_model=ForecastResponse,
    summary="Forecast one product's demand for the next periods",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ForecastRequest.model_json_schema()}},
        }
    },
)
async def forecast(
    name: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    settings: Settings = Depends(get_settings),
    store: Store = Depends(get_store),
    sources: ForecastSources = Depends(get_forecast_sources),
    recorder: Recorder = Depends(get_recorder),
) -> ForecastResponse:
    """Demand of ``item`` (in ``group``) for each of the next ``horizon`` periods, each step logged."""
    check_served(name, holder)
    body = validated(ForecastRequest, await read_json(request, settings.serve.max_body_bytes))
    serving = await serving_model(holder)
    model = serving.model
    stock = settings.forecast.stock if settings.forecast is not None else None
    path = None if stock is None else settings.project_dir / stock
    source = await run_in_threadpool(sources.get, store, model, path)
    rows, group = select_steps(source, body)
    values = model.score(rows)
    ids = _log(recorder, model, rows, values)
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
