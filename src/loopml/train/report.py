"""The training report: one self-contained HTML page (plotly.js inlined, so it opens offline)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from loopml.enums import TaskKind
from loopml.train.fit import TrainResult

__all__ = ["render_report"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { padding: .25rem .6rem; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; } .note { color: #666; font-size: .9rem; }
.good { color: #1a7f37; } .bad { color: #b42318; }
</style>
<script>{{ plotlyjs }}</script></head><body>
<h1>{{ title }}</h1>
<p class="note">{{ subtitle }}</p>
<h2>Summary</h2>{{ summary }}
<h2>Holdout metrics</h2>{{ metrics_table }}
{% for section, body in sections %}<h2>{{ section }}</h2>{{ body }}{% endfor %}
</body></html>
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_fmt(c)}</td>' if isinstance(c, int | float) else f"<td>{_fmt(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(fig: Any) -> str:
    fig.update_layout(height=360, margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white")
    out: str = fig.to_html(full_html=False, include_plotlyjs=False)
    return out


def _binary_sections(result: TrainResult, go: Any) -> list[tuple[str, str]]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, score, m = result.holdout_labels, result.holdout_output, result.metrics
    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)
    roc = go.Figure(go.Scatter(x=fpr, y=tpr, name="model"))
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dot"}))
    roc.update_layout(
        title=f"ROC curve (AUC {m['holdout']['roc_auc']:.3f})",
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
    )
    pr = go.Figure(go.Scatter(x=recall, y=precision, name="model"))
    pr.update_layout(
        title=f"Precision-recall (AP {m['holdout']['average_precision']:.3f})",
        xaxis_title="recall",
        yaxis_title="precision",
    )
    cal = m.get("calibration", [])
    calib = go.Figure(
        go.Scatter(
            x=[c["predicted"] for c in cal],
            y=[c["observed"] for c in cal],
            mode="lines+markers",
            name="model",
        )
    )
    top = max([c["predicted"] for c in cal] + [c["observed"] for c in cal] + [0.01])
    calib.add_trace(go.Scatter(x=[0, top], y=[0, top], name="perfect", line={"dash": "dot"}))
    calib.update_layout(
        title="Calibration (quantile bins)", xaxis_title="mean predicted", yaxis_title="observed rate"
    )
    c = m["confusion"]
    confusion = _table(
        ["", "predicted positive", "predicted negative"],
        [["actual positive", c["tp"], c["fn"]], ["actual negative", c["fp"], c["tn"]]],
    )
    note = (
        f"<p>Threshold {m['threshold']:.4f}, chosen on the validation slice to minimise the cost "
        f"(cost on the holdout: {m['holdout_cost']:.1f}).</p>"
    )
    curves = f'<div class="grid"><div>{_figure(roc)}</div><div>{_figure(pr)}</div></div>'
    return [
        ("Curves", curves),
        ("Calibration", _figure(calib)),
        ("Confusion matrix at the threshold", note + confusion),
    ]


def _regression_sections(result: TrainResult, go: Any) -> list[tuple[str, str]]:
    y, predicted = result.holdout_labels, result.holdout_output
    scatter = go.Figure(go.Scattergl(x=predicted, y=y, mode="markers", marker={"size": 4, "opacity": 0.5}))
    scatter.update_layout(title="Actual against predicted", xaxis_title="predicted", yaxis_title="actual")
    residuals = go.Figure(go.Histogram(x=y - predicted, nbinsx=60))
    residuals.update_layout(title="Residuals (actual - predicted)")
    return [
        ("Residuals", f'<div class="grid"><div>{_figure(scatter)}</div><div>{_figure(residuals)}</div></div>')
    ]


def _no_sections(result: TrainResult, go: Any) -> list[tuple[str, str]]:
    return []


# The sections a task adds to the common ones.
_TASK_SECTIONS = {TaskKind.BINARY: _binary_sections, TaskKind.REGRESSION: _regression_sections}


def _common_sections(result: TrainResult, go: Any) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    if result.importance:
        top = list(result.importance.items())[:25][::-1]
        bars = go.Figure(go.Bar(x=[v for _, v in top], y=[k for k, _ in top], orientation="h"))
        bars.update_layout(title="Feature importance (share of total gain)", height=max(360, 18 * len(top)))
        sections.append(("Feature importance", _figure(bars)))
    if result.tuning is not None and result.tuning.trials:
        done = [t for t in result.tuning.trials if t["value"] is not None]
        trials = go.Figure(
            go.Scatter(x=[t["number"] for t in done], y=[t["value"] for t in done], mode="markers")
        )
        trials.update_layout(
            title=f"Tuning: validation score by trial ({result.tuning.study_name})",
            xaxis_title="trial",
            yaxis_title="score",
        )
        sections.append(("Tuning", _figure(trials)))
    for column, rows in result.metrics.get("segments", {}).items():
        if rows:
            keys = [k for k in rows[0] if k not in ("value", "rows")]
            sections.append(
                (
                    f"Metrics by {column}",
                    _table(
                        [column, "rows", *keys],
                        [[r["value"], r["rows"], *(r[k] for k in keys)] for r in rows],
                    ),
                )
            )
    sections.append(
        ("Parameters", _table(["parameter", "value"], [[k, v] for k, v in result.params.items()]))
    )
    return sections


def _metrics_table(m: dict[str, Any], champion: dict[str, Any] | None) -> str:
    names = list(m["holdout"])
    header = ["metric", "model", "95% CI", "dummy baseline", *(["champion"] if champion else [])]
    rows = []
    for name in names:
        ci = m.get("holdout_ci", {}).get(name)
        row = [
            name,
            m["holdout"][name],
            f"{ci[0]:.4f} to {ci[1]:.4f}" if ci else "",
            m["baseline"].get(name, ""),
        ]
        if champion:
            row.append(champion["holdout"].get(name, ""))
        rows.append(row)
    return _table(header, rows)


def render_report(
    result: TrainResult, *, title: str, subtitle: str, champion: dict[str, Any] | None = None
) -> str:
    """The HTML page for one training run."""
    import plotly.graph_objects as go
    from jinja2 import Environment
    from plotly.offline import get_plotlyjs

    m = result.metrics
    verdict = "beats" if _beats(m["score"], m["baseline_score"], m["greater_is_better"]) else "does not beat"
    summary = (
        f"<p>Primary metric <b>{m['metric']}</b> on the holdout ({m['rows_holdout']:,} newest rows): "
        f"<b>{_fmt(m['score'])}</b>; the dummy baseline scores {_fmt(m['baseline_score'])}, so the model "
        f'<span class="{"good" if verdict == "beats" else "bad"}">{verdict}</span> it.'
    )
    if champion:
        summary += (
            f" The current champion (version {champion['version']}) scores {_fmt(champion['score'])} "
            "on the same rows."
        )
    summary += "</p>"
    sections = [
        *_TASK_SECTIONS.get(TaskKind(m["task"]), _no_sections)(result, go),
        *_common_sections(result, go),
    ]
    page = Environment(autoescape=False).from_string(_PAGE)
    return page.render(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        plotlyjs=get_plotlyjs(),
        summary=summary,
        metrics_table=_metrics_table(m, champion),
        sections=sections,
    )


def _beats(score: float | None, baseline: float | None, greater: bool) -> bool:
    if score is None or baseline is None:
        return False
    return score > baseline if greater else score < baseline
