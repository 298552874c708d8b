"""Predictive maintenance: one unit's recent readings in, remaining useful life and failure risk out.

``POST /v1/models/{name}/rul`` takes ``{"cycles": [...]}``, an engine's readings in cycle order (each
a record of the model's input columns), computes the same per-engine window features as training
(``features.sequences``), and answers the RUL (the project's regression model) and the probability
of failure within ``maintenance.failure_within`` cycles (the ``maintenance.failure_model``), each
logged as a prediction of its model, so monitoring, feedback and actions see them like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml.config import Settings
from loopml.errors import InputError, NotFoundError, PayloadTooLargeError
from loopml.serve.deps import Recorder, get_failure_holder, get_holder, get_recorder, get_settings
from loopml.serve.routes import check_served, read_json, serving_model, validation_error
from loopml.serve.state import ModelHolder, Serving
from loopml.store import utcnow

__all__ = ["Readings", "RulPrediction", "maintenance_router"]

maintenance_router = APIRouter(tags=["maintenance"])


class Readings(BaseModel):
    """One unit's consecutive readings, oldest first: at least the last ``window`` cycles, or every
    cycle since its first one."""

    model_config = ConfigDict(extra="forbid")

    cycles: list[dict[str, Any]] = Field(
        ..., min_length=1, description="Records with the model's input columns (unit, cycle, sensors)."
    )


class RulPrediction(BaseModel):
    """The answer for the unit's last reading."""

    model: str
    model_version: int
    unit: Any = Field(..., description="The unit (entity) the readings belong to.")
    cycle: float = Field(..., description="The last reading's order value (cycle).")
    rul: float = Field(..., description="Remaining useful life in cycles (capped, never below 0).")
    failure_probability: float = Field(..., description="Probability of failure within failure_within.")
    failure_within: int
    alert: bool = Field(..., description="failure_probability >= maintenance.alert_probability.")
    failure_model: str
    failure_model_version: int
    prediction_ids: dict[str, str] = Field(..., description="Ids to send feedback for: rul, failure.")


def _rows(payload: Any, serving: Serving, max_rows: int) -> list[dict[str, Any]]:
    """Validate the body and each reading against the model's contract (422 naming the field)."""
    try:
        readings = Readings.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, lambda loc: ".".join(map(str, loc)) or "body") from None
    if len(readings.cycles) > max_rows:
        raise PayloadTooLargeError(
            f"field 'cycles': {len(readings.cycles)} readings are over serve.max_batch ({max_rows}).",
            hint="Send the last few window lengths of readings; older cycles do not change the answer.",
        )
    rows = []
    for i, raw in enumerate(readings.cycles):
        try:
            rows.append(serving.record.model_validate(raw).model_dump())
        except ValidationError as exc:
            raise validation_error(exc, _reading_field(i)) from None
    return rows


def _reading_field(i: int) -> Callable[[tuple[Any, ...]], str]:
    """Names a field of reading ``i``: ``cycles[3].s7``."""
    return lambda loc: f"cycles[{i}]." + ".".join(map(str, loc))


def _check_sequence(rows: list[dict[str, Any]], entity: str, order: str, window: int) -> None:
    """One unit, consecutive cycles, and enough of them for the window features to mean what they did
    in training: the last ``window`` cycles, or all of them since cycle 1."""
    for i, row in enumerate(rows[1:], start=1):
        if row[entity] != rows[0][entity]:
            raise InputError(
                f"field 'cycles[{i}].{entity}': readings must all belong to one {entity}; "
                f"got {row[entity]!r} after {rows[0][entity]!r}."
            )
        if row[order] != rows[i - 1][order] + 1:
            raise InputError(
                f"field 'cycles[{i}].{order}': readings must be consecutive, oldest first; "
                f"got {row[order]!r} after {rows[i - 1][order]!r}."
            )
    needed = int(min(window, rows[-1][order]))
    if len(rows) < needed:
        raise InputError(
            f"field 'cycles': {len(rows)} readings are too few; send the last {window} cycles "
            f"(or every cycle since the first), here {needed}."
        )


def _log(recorder: Recorder, entries: list[tuple[Serving, str, float, dict[str, Any]]], inputs: Any) -> None:
    """Count each prediction and log them together: one journal append, one store write (with the
    actions their rules enqueue, in the same transaction)."""
    now, records = utcnow(), []
    for serving, prediction_id, score, output in entries:
        model = serving.model
        recorder.metrics.serving(model.name, model.version.version, recorder.alias)
        recorder.metrics.observe_scores(model.name, [score])
        records.append(
            {
                "id": prediction_id,
                "model_name": model.name,
                "model_version": model.version.version,
                "created_at": now,
                "origin": "api",
                "inputs": inputs,
                "score": score,
                "output": output,
            }
        )
    if recorder.prediction_log is not None:
        recorder.prediction_log.submit(records)


@maintenance_router.post(
    "/v1/models/{name}/rul",
    summary="Remaining useful life and failure risk from one unit's recent readings",
    response_model=RulPrediction,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": Readings.model_json_schema()}},
        }
    },
)
async def predict_rul(
    name: str,
    request: Request,
    holder: ModelHolder = Depends(get_holder),
    failure_holder: ModelHolder = Depends(get_failure_holder),
    settings: Settings = Depends(get_settings),
    recorder: Recorder = Depends(get_recorder),
) -> RulPrediction:
    """Score the last reading of one unit with the RUL and the failure model; log both predictions."""
    sequences, config = settings.features.sequences, settings.maintenance
    if config is None or sequences is None:
        raise NotFoundError(
            f"project '{settings.name}' has no maintenance section (and features.sequences); "
            "this route serves predictive-maintenance projects."
        )
    check_served(name, holder)
    payload = await read_json(request, settings.serve.max_body_bytes, nan_literals=True)
    rul_serving = await serving_model(holder)
    failure_serving = await serving_model(failure_holder)
    rows = _rows(payload, rul_serving, settings.serve.max_batch)
    _check_sequence(rows, sequences.entity, sequences.order, sequences.window)
    frame = pd.DataFrame.from_records(rows)
    rul = min(max(float(rul_serving.model.predict_frame(frame, observe=False)[-1]), 0.0), config.rul_cap)
    probability = float(failure_serving.model.predict_frame(frame, observe=False)[-1])
    ids = {"rul": str(uuid.uuid4()), "failure": str(uuid.uuid4())}
    last = rul_serving.record.model_validate(rows[-1]).model_dump(mode="json")
    label = int(probability >= failure_serving.model.threshold)
    _log(
        recorder,
        [
            (
                rul_serving,
                ids["rul"],
                rul,
                {"score": rul, "prediction": rul, "failure_probability": probability},
            ),
            (
                failure_serving,
                ids["failure"],
                probability,
                {"score": probability, "label": label, "rul": rul},
            ),
        ],
        last,
    )
    return RulPrediction(
        model=name,
        model_version=rul_serving.model.version.version,
        unit=rows[-1][sequences.entity],
        cycle=float(rows[-1][sequences.order]),
        rul=rul,
        failure_probability=probability,
        failure_within=config.failure_within,
        alert=probability >= config.alert_probability,
        failure_model=failure_serving.model.name,
        failure_model_version=failure_serving.model.version.version,
        prediction_ids=ids,
    )
