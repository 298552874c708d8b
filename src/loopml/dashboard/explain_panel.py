"""The dashboard's "Why this prediction" panel: one logged prediction's feature contributions as a
waterfall from the model's base value to the prediction's raw score (``?prediction=ID``, else the
newest prediction), computed when the page renders through ``project.predictions.explain``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.dashboard.figures import waterfall
from loopml.errors import LoopMLError, NotFoundError

if TYPE_CHECKING:
    from loopml.project import LoadedModel, LoggedExplanation, Project

__all__ = ["explanation_figure", "explanation_panel"]

_VALUE_CHARS = 40  # an input value shown beside its feature's name is cut to this many characters


def _label(feature: str, features: int, inputs: dict[str, Any]) -> str:
    if features > 1 or feature not in inputs:
        return f"{feature} ({features} features)" if features > 1 else feature
    shown = str(inputs[feature])
    shown = shown if len(shown) <= _VALUE_CHARS else shown[: _VALUE_CHARS - 1] + "…"
    return f"{feature} = {shown}"


def explanation_figure(logged: LoggedExplanation) -> dict[str, Any]:
    """The waterfall's figure spec: the base value, each contribution, then the raw score."""
    explanation = logged.explanation
    entries = explanation.contributions
    labels = ["base value", *(_label(c.feature, c.features, logged.inputs) for c in entries), "raw score"]
    values = [explanation.base_value, *(c.contribution for c in entries), explanation.raw_score]
    return waterfall(labels, values)


def explanation_panel(
    project: Project, prediction_id: str | None = None, served: LoadedModel | None = None
) -> dict[str, Any]:
    """The panel's context (``templates/explain.html.j2``): the prediction asked for, and either its
    summary and waterfall or a one-line note when there is nothing to explain. ``served``: the
    model the server serves, used when it made the prediction (no version is loaded again)."""
    try:
        logged = project.predictions.explain(prediction_id, served=served)
    except NotFoundError as exc:
        note = "No prediction logged yet." if prediction_id is None else str(exc)
        return {"asked": prediction_id or "", "note": note}
    except LoopMLError as exc:  # a model that cannot be explained, inputs that no longer score
        return {"asked": prediction_id or "", "note": str(exc)}
    explanation = logged.explanation
    return {
        "asked": prediction_id or "",
        "prediction_id": logged.prediction_id,
        "version": logged.model_version,
        "created_at": str(logged.created_at),
        "score": "n/a" if logged.score is None else f"{logged.score:.4f}",
        "explained_class": ""
        if explanation.explained_class is None
        else f" (class {explanation.explained_class})",
        "raw_score": f"{explanation.raw_score:+.4f}",
        "base_value": f"{explanation.base_value:+.4f}",
        "figure": explanation_figure(logged),
    }
