"""The top-k route of a ranking model: ``POST /v1/models/{name}/recommend``.

A customer the model knows gets the items it ranks highest among those the customer has not bought
(and not ``exclude``); an unknown customer gets the best sellers of their ``segment`` (e.g. the
country) when the model knows it, else the overall best sellers. Every list served is logged as one
prediction (inputs: customer, segment, time; output: the items), so that later purchases can be
fed back as its label (how many of the items the customer bought) and hit rate@k monitored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from loopml.config import ServeConfig
from loopml.enums import TaskKind
from loopml.errors import InputError
from loopml.serve.deps import Recorder, get_holder, get_recorder, get_serve_config
from loopml.serve.routes import check_served, read_json, serving_model, validated
from loopml.serve.state import ModelHolder, Serving
from loopml.store import utcnow

__all__ = ["RecommendRequest", "RecommendResponse", "RecommendedItem", "recommend_router"]

recommend_router = APIRouter(tags=["recommend"])

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RecommendRequest(BaseModel):
    """Who to recommend for, how many items, and what else to leave out."""

    model_config = ConfigDict(extra="forbid")

    customer: Annotated[int, Field(strict=True)] | Text = Field(
        ..., description="The customer id, as in the training data (e.g. 17850)."
    )
    k: int = Field(10, ge=1, le=100, description="How many items.")
    segment: Text | None = Field(None, description="Cold start: the customer's segment, e.g. the Country.")
    exclude: list[Text] = Field(
        default_factory=list, max_length=1000, description="Items to leave out too (e.g. the basket)."
    )
    time: datetime | None = Field(None, description="When the list is shown (default: now); monitoring time.")


class RecommendedItem(BaseModel):
    """One recommended item."""

    item: str
    rank: int
    score: float


class RecommendResponse(BaseModel):
    """The list, the version that made it, and where it came from (the model or a fallback)."""

    model: str
    model_version: int
    prediction_id: str
    customer: str
    known: bool
    source: str
    items: list[RecommendedItem]


def _naive_utc(value: datetime | None) -> datetime:
    if value is None:
        return utcnow()
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _check_time(serving: Serving, time: datetime | None) -> None:
    """A ``time`` outside the plausible range of event times is refused (it would be the prediction's
    monitoring time; see :class:`~loopml.validate.ScoringPolicy`)."""
    if time is None:
        return
    policy = serving.checker.policy
    problem = policy.event_time_problem(_naive_utc(time), datetime.now(UTC).replace(tzinfo=None))
    if problem is not None:
        error, hint = problem
        raise InputError(f"field 'time': '{time.isoformat()}' {error}; {hint}.")


def _log(recorder: Recorder, body: RecommendResponse, inputs: dict[str, Any]) -> None:
    writer = recorder.prediction_log
    if writer is not None:
        items = [i.item for i in body.items]
        output = {"items": items, "top_item": items[0] if items else None, "source": body.source,
                  "known": body.known}  # fmt: skip
        row = {
            "id": body.prediction_id,
            "model_name": body.model,
            "model_version": body.model_version,
            "created_at": utcnow(),
            "origin": "api",
            "inputs": inputs,
            "score": body.items[0].score if body.items else 0.0,
            "output": output,
        }
        writer.submit([row])
    recorder.metrics.serving(body.model, body.model_version, recorder.alias)


@recommend_router.post(
    "/v1/models/{name}/recommend",
    summary="Top-k new items for one customer",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RecommendRequest.model_json_schema()}},
        }
    },
)
async def recommend(
    name: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    config: ServeConfig = Depends(get_serve_config),
    recorder: Recorder = Depends(get_recorder),
) -> RecommendResponse:
    """The ``k`` items the customer is most likely to buy next, never one they already bought."""
    check_served(name, holder)
    payload = validated(RecommendRequest, await read_json(request, config.max_body_bytes))
    serving = await serving_model(holder)
    model = serving.model
    _check_time(serving, payload.time)
    if model.task.name is not TaskKind.RANKING:
        raise InputError(f"model '{name}' is a {model.task.name} model; /recommend serves ranking models.")
    recommender = model.pipeline[-1]
    found = await run_in_threadpool(
        recommender.recommend, payload.customer, payload.k, segment=payload.segment, exclude=payload.exclude
    )
    body = RecommendResponse(
        model=name,
        model_version=model.version.version,
        prediction_id=str(uuid.uuid4()),
        customer=found.user,
        known=found.known,
        source=found.source,
        items=[
            RecommendedItem(item=item, rank=n, score=score)
            for n, (item, score) in enumerate(zip(found.items, found.scores, strict=True), start=1)
        ],
    )
    signature = model.version.signature
    inputs = {recommender.user: found.user, "k": payload.k}
    if recommender.segment:
        inputs[recommender.segment] = payload.segment
    if signature.get("event_time"):
        # One format for every logged time: the monitor parses the column with a single format.
        inputs[signature["event_time"]] = _naive_utc(payload.time).strftime("%Y-%m-%dT%H:%M:%S")
    _log(recorder, body, inputs)
    return body
