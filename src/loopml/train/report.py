"""The training report: one self-contained HTML page (plotly.js inlined, so it opens offline)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from loopml.enums import TaskKind
from loopml.errors import LoopMLError
from loopml.scoring.explain import contribution_importance
from loopml.train.fit import TrainResult

__all__ = ["holdout_contributions", "render_report"]

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


_CONTRIBUTION_ROWS = 2000  # holdout rows explained for the global importance (drawn at random beyond)


def holdout_contributions(result: TrainResult) -> dict[str, float]:
    """Mean absolute contribution of each feature (the user's columns, window features by name) to
    the raw score over the holdout, largest first; empty for a model that cannot be explained."""
    try:
        return contribution_importance(result.pipeline, result.holdout, max_rows=_CONTRIBUTION_ROWS)
    except (LoopMLError, KeyError, ValueError):  # not explainable, or holdout rows are not its inputs
        return {}


def _contribution_section(result: TrainResult, go: Any) -> tuple[str, str] | None:
    importance = holdout_contributions(result)
    if not importance:
        return None
    top = list(importance.items())[:25][::-1]
    bars = go.Figure(go.Bar(x=[v for _, v in top], y=[k for k, _ in top], orientation="h"))
    bars.update_layout(
        title="Mean |contribution| to the raw score on the holdout", height=max(360, 18 * len(top))
    )
    rows = min(len(result.holdout), _CONTRIBUTION_ROWS)
    note = (
        f'<p class="note">Global importance: each feature\'s mean absolute contribution (TreeSHAP for '
        f"trees, coefficient times value for linear models) over {rows:,} holdout rows, in the raw "
        "score's units (log-odds for a classifier, the value for a regression), in the names of your "
        "columns (datetime parts and encoded categories summed into their column; window features by "
        "their own names). The same contributions as <code>explain=true</code> gives per prediction.</p>"
    )
    return "Feature contributions", note + _figure(bars)


def _common_sections(result: TrainResult, go: Any) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    contributions = _contribution_section(result, go)
    if contributions is not None:
        sections.append(contributions)
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


def _warning_sections(result: TrainResult) -> list[tuple[str, str]]:
    """The sanity warnings (:mod:`loopml.train.sanity`), each with the setting that deals with it."""
    warnings = result.metrics.get("warnings", [])
    rows = [[w["kind"], w["column"] or "", w["detail"], w["setting"]] for w in warnings]
    if not rows:
        return []
    return [("Sanity warnings", _table(["kind", "column", "what was found", "setting"], rows))]


def _selection_sections(result: TrainResult) -> list[tuple[str, str]]:
    """Which candidate won on the validation slice and by how much; what was dropped and why."""
    selection = result.metrics.get("selection")
    if not selection:
        return []
    rows = [
        [
            c["candidate"] + (f" (tuned, {c['tuned_trials']} trials)" if "tuned_trials" in c else ""),
            c["features"],
            c["validation"],
            f"{c['win_share']:.0%}" if "win_share" in c else "",
            f"{c['parts_win_share']:.0%}" if "parts_win_share" in c else "",
            "chosen" if c["chosen"] else "",
        ]
        for c in selection["candidates"]
    ]
    header = [
        "candidate",
        "features",
        f"validation {selection['metric']}",
        "beat LightGBM's defaults on resamples",
        "beat it without datetime parts on resamples",
        "",
    ]
    body = f"<p>{html.escape(selection['summary'])}.</p>{_table(header, rows)}"
    body += f'<p class="note">Rule: {html.escape(selection["rule"])}.</p>'
    for dropped in selection.get("dropped", []):
        body += (
            f"<p>Dropped {html.escape(', '.join(dropped['features']))}: {html.escape(dropped['reason'])} "
            f"(setting: {html.escape(dropped['setting'])}).</p>"
        )
    return [("Model selection (validation slice)", body)]


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
        *_warning_sections(result),
        *_TASK_SECTIONS.get(TaskKind(m["task"]), _no_sections)(result, go),
        *_selection_sections(result),
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
