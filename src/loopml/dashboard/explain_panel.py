"""The dashboard's "Why this prediction" panel: one logged prediction's feature contributions as a
waterfall from the model's base value to the prediction's raw score (``?prediction=ID``, else the
newest prediction), computed when the page renders through ``project.predictions.explain``."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopMLError, NotFoundError

if TYPE_CHECKING:
    from loopml.project import LoggedExplanation, Project

__all__ = ["explanation_panel", "waterfall"]

_VALUE_CHARS = 40  # an input value shown beside its feature's name is cut to this many characters


def _form(prediction_id: str | None) -> str:
    value = html.escape(prediction_id or "", quote=True)
    return (
        '<form method="get" action=""><label>Prediction id <input name="prediction" size="40" '
        f'value="{value}"></label> <button type="submit">Explain</button></form>'
    )


def _label(feature: str, features: int, inputs: dict[str, Any]) -> str:
    if features > 1 or feature not in inputs:
        return f"{feature} ({features} features)" if features > 1 else feature
    shown = str(inputs[feature])
    shown = shown if len(shown) <= _VALUE_CHARS else shown[: _VALUE_CHARS - 1] + "…"
    return f"{feature} = {shown}"


def waterfall(logged: LoggedExplanation) -> Any:
    """The Plotly figure: the base value, each contribution, then the raw score they add up to."""
    import plotly.graph_objects as go

    explanation = logged.explanation
    entries = explanation.contributions
    labels = ["base value", *(_label(c.feature, c.features, logged.inputs) for c in entries), "raw score"]
    values = [explanation.base_value, *(c.contribution for c in entries), explanation.raw_score]
    figure = go.Figure(
        go.Waterfall(
            orientation="h",
            measure=["absolute", *(["relative"] * len(entries)), "total"],
            y=labels,
            x=values,
            text=[f"{v:+.4f}" for v in values],
            textposition="outside",
        )
    )
    figure.update_layout(
        title="Contributions to the raw score",
        yaxis={"autorange": "reversed"},
        height=max(340, 40 * len(labels)),
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
    )
    return figure


def explanation_panel(project: Project, prediction_id: str | None = None) -> str:
    """The panel's HTML: the waterfall of ``prediction_id`` (the newest prediction when None), or a
    one-line note when there is nothing to explain."""
    head = "<h2>Why this prediction</h2>" + _form(prediction_id)
    try:
        logged = project.predictions.explain(prediction_id)
    except NotFoundError as exc:
        note = "No prediction logged yet." if prediction_id is None else str(exc)
        return f'{head}<p class="muted">{html.escape(note)}</p>'
    except LoopMLError as exc:  # a model that cannot be explained, inputs that no longer score
        return f'{head}<p class="muted">{html.escape(str(exc))}</p>'
    explanation = logged.explanation
    explained = "" if explanation.explained_class is None else f" (class {explanation.explained_class})"
    score = "n/a" if logged.score is None else f"{logged.score:.4f}"
    summary = (
        f"<p>Prediction <code>{html.escape(logged.prediction_id)}</code> by version "
        f"{logged.model_version} at {html.escape(str(logged.created_at))}: score {score}; "
        f"raw score{html.escape(explained)} "
        f"{explanation.raw_score:+.4f} = base value {explanation.base_value:+.4f} + the contributions "
        "below (log-odds for a classifier, the value for a regression).</p>"
    )
    chart = waterfall(logged).to_html(full_html=False, include_plotlyjs=False, div_id="chart-explanation")
    return head + summary + chart
