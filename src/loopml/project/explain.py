"""Explaining a logged prediction: its inputs, scored again by the version that made it, with each
feature's contribution (see :mod:`loopml.scoring.explain`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.errors import NotFoundError
from loopml.scoring import DEFAULT_TOP_K, Explanation, LoadedModel
from loopml.store import logged_prediction

if TYPE_CHECKING:
    from loopml.project.core import Project

__all__ = ["LoggedExplanation", "explain_logged"]


@dataclass(frozen=True)
class LoggedExplanation:
    """Why a logged prediction scored as it did: the prediction (its id, the version that made it,
    when, its logged score and inputs) and its :class:`~loopml.scoring.Explanation`."""

    prediction_id: str
    model_version: int
    created_at: datetime
    score: float | None
    inputs: dict[str, Any]
    explanation: Explanation

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "model_version": self.model_version,
            "created_at": self.created_at.isoformat(),
            "score": self.score,
            "inputs": self.inputs,
            "explanation": self.explanation.to_dict(),
        }


def explain_logged(
    project: Project,
    prediction_id: str | None,
    k: int = DEFAULT_TOP_K,
    *,
    served: LoadedModel | None = None,
) -> LoggedExplanation:
    """The explanation of logged prediction ``prediction_id`` (the newest one when None).

    The logged inputs are scored again by the version that made the prediction (``served`` when it
    is that version, else loaded); window features are read from its window history at the event's
    time (so they equal the served ones unless events older than it arrived since).
    """
    row = logged_prediction(project.store.engine, project.name, prediction_id)
    if row is None:
        if prediction_id is None:
            raise NotFoundError(f"model '{project.name}' has no logged prediction yet to explain.")
        raise NotFoundError(
            f"prediction '{prediction_id}' is not in the prediction log of model '{project.name}'.",
            hint="Use the prediction_id a response or a batch output gave.",
        )
    version = int(row["model_version"])
    model = (
        served if served is not None and served.version.version == version else project.models.load(version)
    )
    inputs = dict(row["inputs"] or {})
    features = model.features(model.coerce(pd.DataFrame.from_records([inputs])))
    return LoggedExplanation(
        prediction_id=str(row["id"]),
        model_version=int(row["model_version"]),
        created_at=row["created_at"],
        score=row["score"],
        inputs=inputs,
        explanation=model.explain(features, k)[0],
    )
