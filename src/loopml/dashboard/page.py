"""The monitoring dashboard: one self-contained HTML page (plotly.js inlined, works offline).

Models and their alias history, prediction volume, performance over time with label coverage, the
label-free estimate, drift per feature over time, alerts, the delivery status of actions, and why one
logged prediction scored as it did (its feature contributions as a waterfall).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.dashboard.actions_panel import actions_panel
from loopml.dashboard.explain_panel import explanation_panel

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = ["dashboard_data", "render_dashboard"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.8rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: .25rem .6rem; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; } .alert { color: #b42318; } .muted { color: #666; }
"""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def dashboard_data(project: Project) -> dict[str, Any]:
    """Everything the page shows, as plain data (also what the tests check against the page)."""
    return project.monitor.dashboard().to_dict()


def _charts(data: dict[str, Any]) -> list[tuple[str, str]]:
    import plotly.graph_objects as go

    def figure(fig: Any, title: str, div: str) -> str:
        fig.update_layout(
            title=title, height=340, template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 40}
        )
        out: str = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div)
        return out

    perf = pd.DataFrame(data["performance"])
    charts = []
    if not perf.empty:
        volume = go.Figure(go.Bar(x=perf["window_start"], y=perf["predictions"], name="predictions"))
        volume.add_trace(go.Bar(x=perf["window_start"], y=perf["labels"], name="labelled"))
        charts.append(
            ("Prediction volume", figure(volume, "Predictions and labels per window", "chart-volume"))
        )
        quality = go.Figure()
        metric = data["versions"][0]["metric"] or "average_precision"
        realized = [r.get(metric) if isinstance(r, dict) else None for r in perf.get("realized", [])]
        estimated = [r.get(metric) if isinstance(r, dict) else None for r in perf.get("estimated", [])]
        quality.add_trace(
            go.Scatter(x=perf["window_start"], y=realized, name=f"realized {metric}", mode="lines+markers")
        )
        if any(v is not None for v in estimated):
            quality.add_trace(
                go.Scatter(
                    x=perf["window_start"],
                    y=estimated,
                    name=f"estimated {metric}",
                    mode="lines",
                    line={"dash": "dot"},
                )
            )
        quality.add_trace(
            go.Bar(
                x=perf["window_start"],
                y=perf["label_coverage"],
                name="label coverage",
                yaxis="y2",
                opacity=0.25,
            )
        )
        quality.update_layout(
            yaxis2={"overlaying": "y", "side": "right", "range": [0, 1], "title": "coverage"}
        )
        charts.append(
            (
                "Performance over time",
                figure(quality, "Realized and estimated performance", "chart-performance"),
            )
        )
    drift = pd.DataFrame(data["drift"])
    if not drift.empty:
        pivot = drift.pivot_table(index="column", columns="window_start", values="psi")
        heat = go.Figure(
            go.Heatmap(
                z=pivot.to_numpy(),
                x=[str(c)[:10] for c in pivot.columns],
                y=list(pivot.index),
                colorscale="Reds",
                colorbar={"title": "PSI"},
            )
        )
        charts.append(("Drift per feature", figure(heat, "PSI against the reference profile", "chart-drift")))
    return charts


def render_dashboard(project: Project, prediction_id: str | None = None) -> str:
    """The dashboard page (explaining logged prediction ``prediction_id``, else the newest one)."""
    from plotly.offline import get_plotlyjs

    data = dashboard_data(project)
    parts = [f"<h1>loopml: {html.escape(data['model'])}</h1>"]
    if not data["versions"]:
        parts.append('<p class="muted">No model yet: run <code>loopml train</code>.</p>')
    else:
        parts.append(
            f"<p>Serving version <b>{data['champion']}</b> ({html.escape(project.settings.serve.alias)}).</p>"
        )
        alerts = data["alerts"]
        parts.append(
            "<h2>Alerts</h2>"
            + (
                _table(["at", "kind", "message"], [[a["at"], a["kind"], a["message"]] for a in alerts])
                if alerts
                else '<p class="muted">No alerts.</p>'
            )
        )
        parts.append(actions_panel(data["actions"]))
        for title, body in _charts(data):
            parts.append(f"<h2>{html.escape(title)}</h2>{body}")
        parts.append(explanation_panel(project, prediction_id))
        parts.append(
            "<h2>Versions</h2>"
            + _table(
                ["version", "aliases", "metric", "score", "created"],
                [
                    [
                        v["version"],
                        ", ".join(v["aliases"]),
                        v["metric"],
                        f"{v['score']:.4f}" if v["score"] is not None else "",
                        v["created_at"],
                    ]
                    for v in data["versions"]
                ],
            )
        )
        parts.append(
            "<h2>Retraining</h2>"
            + (
                _table(
                    ["at", "what", "status", "challenger", "why"],
                    [
                        [c["at"], c["kind"], c["status"], c["challenger"] or "", c["why"]]
                        for c in data["cycles"]
                    ],
                )
                if data["cycles"]
                else '<p class="muted">No retraining cycle yet.</p>'
            )
        )
        if data["served_by"]:
            parts.append(
                "<h2>Which version served each window</h2>"
                + _table(
                    ["window", "version"], [[w["window_start"], w["version"]] for w in data["served_by"]]
                )
            )
        parts.append(
            "<h2>Alias history</h2>"
            + _table(
                ["at", "alias", "from", "to", "actor", "reason"],
                [
                    [h["at"], h["alias"], h["from"] or "", h["to"], h["actor"], h["reason"]]
                    for h in data["history"]
                ],
            )
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>loopml: '
        f"{html.escape(data['model'])}</title><style>{_STYLE}</style><script>{get_plotlyjs()}</script>"
        f"</head><body>{''.join(parts)}</body></html>"
    )
