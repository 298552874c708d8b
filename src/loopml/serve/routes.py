"""Routers: predictions, health and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from loopml.config import ServeConfig
from loopml.errors import InputError, LoopMLError, NotFoundError, PayloadTooLargeError
from loopml.scoring import DEFAULT_TOP_K, MAX_TOP_K
from loopml.serve.body import read_json
from loopml.serve.deps import (
    Recorder,
    get_holder,
    get_metrics,
    get_prediction_log,
    get_recorder,
    get_serve_config,
    get_shutting_down,
    get_store,
)
from loopml.serve.explain import EXPLAIN_DESCRIPTION
from loopml.serve.metrics import Metrics
from loopml.serve.schema import answers, checked_records, record_field
from loopml.serve.state import ModelHolder, Serving, await_predictions
from loopml.store import PredictionLogWriter, Store, record_feedback, utcnow
from loopml.tasks import label_check
from loopml.validate import CheckedRecords

__all__ = [
    "health_router",
    "metrics_router",
    "predict_router",
    "read_json",
    "score_records",
    "serving_model",
    "validated",
    "validation_details",
]

M = TypeVar("M", bound=BaseModel)

_RECORDS = {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}, "minItems": 1}]}
predict_router = APIRouter(tags=["predict"])
health_router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["metrics"])
WINDOW_FEATURES_DESCRIPTION = (
    "Also return each prediction's `window_features`: the entity window features the model read for "
    "it (a card's spend over the last day, a terminal's fraud rate...), by name; null where a window "
    "held nothing to average. What training computes for the same event, whichever replica served it."
)


def check_served(name: str, holder: ModelHolder) -> None:
    """A 404 naming the served model when a route's ``{name}`` is another model."""
    if name != holder.name:
        raise NotFoundError(f"model '{name}' is not served here; this server serves '{holder.name}'.")


async def serving_model(holder: ModelHolder) -> Serving:
    """The holder's model; a re-check of the alias (and a load) runs off the event loop."""
    return await run_in_threadpool(holder.get) if holder.due else holder.get()


def _validate(serving: Serving, payload: Any, max_batch: int) -> CheckedRecords:
    batch = isinstance(payload, list)
    if batch and len(payload) > max_batch:
        raise PayloadTooLargeError(
            f"batch of {len(payload)} records is over the limit of {max_batch}.",
            hint="Split the batch, or use `loopml predict` for files.",
        )
    if (batch and not payload) or not isinstance(payload, dict | list):
        raise InputError("request body must be one JSON object or a non-empty list of objects.")
    records: list[Any] = payload if isinstance(payload, list) else [payload]
    return checked_records(serving.checker, records, record_field(batch))


def validation_details(exc: ValidationError, name: Callable[[tuple[Any, ...]], str]) -> list[dict[str, Any]]:
    """pydantic's errors as ``{field, error, type}``, each field named by ``name(loc)``."""
    return [
        {"field": name(tuple(err["loc"])), "error": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def validation_error(exc: ValidationError, name: Callable[[tuple[Any, ...]], str]) -> InputError:
    details = validation_details(exc, name)
    first = details[0]
    return InputError(f"field '{first['field']}': {first['error']}.", details=details)


def validated(model: type[M], payload: Any) -> M:
    """``payload`` (a parsed body) as ``model``; a 422 naming the field (``a.b[2]``) otherwise."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, _dotted) from None


def _dotted(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"


def score_records(
    recorder: Recorder,
    serving: Serving,
    parsed: CheckedRecords,
    explain: int | None = None,
    windows: bool = False,
) -> list[dict[str, Any]]:
    """Score validated records, log each prediction and count it: the one path of v1 and v2.

    With ``explain`` (a top k) each result also carries its ``explanation``, with ``windows`` the
    ``window_features`` it was scored with (neither is logged)."""
    # Score the parsed values themselves, not their ISO strings: pandas infers one string format per
    # column, so a batch mixing precisions or UTC offsets would be mis-parsed (or fail) as text.
    rows = parsed.rows
    model = serving.model
    scored = model.score_records(rows, explain_k=explain or None, windows=windows)
    scores, explained = scored.scores, scored.explanations
    outputs = model.outputs(scores)
    version, name = model.version.version, model.name
    ids = [str(uuid.uuid4()) for _ in outputs]
    results = answers(parsed, outputs, ids, model.contract.id_column)
    writer = recorder.prediction_log
    inputs = parsed.logged
    if writer is not None:
        now = utcnow()
        writer.submit(
            [
                {
                    "id": r["prediction_id"],
                    "model_name": name,
                    "model_version": version,
                    "created_at": now,
                    "origin": "api",
                    "inputs": logged,
                    "score": r["score"],
                    "output": r,
                }
                for r, logged in zip(results, inputs, strict=True)
            ]
        )
        if recorder.shadow is not None:  # scored by a challenger later, off this path
            recorder.shadow.submit(rows, inputs, results, version)
    recorder.metrics.serving(name, version, recorder.alias)
    recorder.metrics.observe_scores(name, [r["score"] for r in results], version)
    if explained is not None:
        results = [{**r, "explanation": e.to_dict()} for r, e in zip(results, explained, strict=True)]
    if windows:  # every window feature by name, as the model read it (null: an empty window's mean)
        results = [{**r, "window_features": w} for r, w in zip(results, scored.window_rows(), strict=True)]
    return results


@predict_router.post(
    "/v1/models/{name}/predict",
    summary="Score one record or a list of records",
    # The schemas come from the served version's contract (loopml.serve.openapi); this generic one is
    # what the document says while no version is served yet.
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _RECORDS}}}},
)
async def predict(
    name: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    config: ServeConfig = Depends(get_serve_config),
    recorder: Recorder = Depends(get_recorder),
    explain: bool = Query(False, description=EXPLAIN_DESCRIPTION),
    explain_k: int = Query(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="Features named per explanation."),
    features: bool = Query(False, description=WINDOW_FEATURES_DESCRIPTION),
) -> Response:
    """Validate the records against the model's contract, score them and log each prediction.

    With `explain=true` each prediction also carries an `explanation`: `raw_score`, `base_value`,
    `contributions` (`[{"feature", "contribution"}]`, the top `explain_k` by magnitude, then
    `{"feature": "(rest)", "contribution", "features"}` summing the others) and, for a classifier,
    the `class` explained; `base_value + sum(contribution) == raw_score`.

    With `features=true` each prediction also carries `window_features`: every entity window
    feature the model read for it, by name (`{}` for a model without window features).
    """
    check_served(name, holder)
    payload = await read_json(request, config.max_body_bytes, nan_literals=True)
    serving = await serving_model(holder)
    parsed = _validate(serving, payload, config.max_batch)
    results = score_records(recorder, serving, parsed, explain_k if explain else None, features)
    body = {"model": name, "model_version": serving.model.version.version, "predictions": results}
    return Response(orjson.dumps(body, option=orjson.OPT_NAIVE_UTC), media_type="application/json")


@predict_router.post(
    "/v1/feedback",
    summary="Ground truth for earlier predictions (late, in bulk)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["prediction_id", "label"],
                            "properties": {"prediction_id": {"type": "string"}, "label": {}},
                        },
                    }
                }
            },
        }
    },
)
async def feedback(
    request: Request,
    config: ServeConfig = Depends(get_serve_config),
    store: Store = Depends(get_store),
    writer: PredictionLogWriter | None = Depends(get_prediction_log),
) -> JSONResponse:
    """Record labels: a list of {"prediction_id", "label"} objects. Unknown ids are counted, not stored.

    Each label is checked against the model version that made its prediction (binary: 0/1 or
    true/false; multiclass: one of its classes; regression: a finite number within the target's
    range): a 422 naming the item and the prediction id otherwise, and nothing is stored."""
    payload = await read_json(request, config.max_body_bytes)
    if not isinstance(payload, list) or not payload or not all(isinstance(item, dict) for item in payload):
        raise InputError('feedback body must be a non-empty list of {"prediction_id": ..., "label": ...}.')
    if len(payload) > 100 * config.max_batch:
        raise PayloadTooLargeError(f"{len(payload)} labels are over the limit of {100 * config.max_batch}.")
    if writer is not None:  # a label may follow its prediction within the log's flush interval
        await run_in_threadpool(writer.flush)
    await run_in_threadpool(await_predictions, store, payload, 1.0, writer)  # or another replica's
    counts = await run_in_threadpool(record_feedback, store.engine, payload, label_check)
    return JSONResponse(counts)


@health_router.get("/health/live", summary="The process is up")
def live() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/health/ready", summary="A model is loaded and the server takes traffic")
def ready(
    holder: ModelHolder = Depends(get_holder), shutting_down: bool = Depends(get_shutting_down)
) -> JSONResponse:
    """200 while a model is served; ``degraded`` with the ``problem`` when the alias points at a
    version this server refuses (it keeps serving the one it has); 503 when it can serve nothing."""
    if shutting_down:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    try:
        model = holder.get().model
        version = model.version.version
        if model.online is not None:  # window features need their (shared) online state
            model.online.check()
    except LoopMLError as exc:
        down = {"status": "unavailable", "model": holder.name, "problem": exc.to_dict()}
        return JSONResponse(down, status_code=503)
    body: dict[str, Any] = {"status": "ready", "model": holder.name, "model_version": version}
    if holder.refused is not None:
        refused, error = holder.refused
        body.update(status="degraded", problem={**error.to_dict(), "refused_version": refused})
    return JSONResponse(body)


@metrics_router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
def metrics(collected: Metrics = Depends(get_metrics), holder: ModelHolder = Depends(get_holder)) -> Response:
    current = holder.current
    if current is not None:
        collected.serving(holder.name, current.model.version.version, holder.alias)
    collected.refusing(holder.name, holder.refused[0] if holder.refused is not None else None)
    return Response(collected.exposition(), media_type=CONTENT_TYPE_LATEST)
