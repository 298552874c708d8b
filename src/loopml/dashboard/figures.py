"""The dashboard's charts as Plotly figure specs (plain dicts, drawn by ``static/dashboard.js``).

Every axis has an explicit range that holds every point: time axes are dates spanning the windows
shown (half a window either side), metric axes run from 0 to 1 for probabilities and scores, count
axes from 0 to a little over the largest count. Drift colours are the levels of ``monitor`` (ok,
warn, alert: absolute thresholds) in their fixed colours, never scaled to the page's range.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

__all__ = [
    "drift_heatmap",
    "importance_bars",
    "overlay_curves",
    "performance_chart",
    "residual_overlay",
    "volume_chart",
    "waterfall",
]

_LAYOUT = {
    "template": "plotly_white",
    "height": 340,
    "margin": {"l": 60, "r": 60, "t": 40, "b": 50},
    "legend": {"orientation": "h", "y": -0.2},
    "hovermode": "x unified",
}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
_PROBABILITY = {
    "roc_auc",
    "average_precision",
    "precision",
    "recall",
    "positive_rate",
    "accuracy",
    "f1_macro",
}


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": {"text": title, "font": {"size": 14}}, **extra}


def _time_axis(starts: list[str], window_ms: int) -> dict[str, Any]:
    """A date axis over the windows shown, half a window beyond the first and the last."""
    half = timedelta(milliseconds=window_ms / 2)
    first, last = datetime.fromisoformat(starts[0]), datetime.fromisoformat(starts[-1])
    daily = window_ms >= 86_400_000
    return {
        "type": "date",
        "range": [(first - half).isoformat(), (last + half).isoformat()],
        "tickformat": "%Y-%m-%d" if daily else "%m-%d %H:%M",
        "title": {"text": "window start"},
    }


def _count_axis(values: list[float], title: str) -> dict[str, Any]:
    top = max([0.0, *values]) or 1.0
    return {"range": [0, top * 1.1], "title": {"text": title}, "rangemode": "tozero"}


def volume_chart(performance: list[dict[str, Any]], window_ms: int) -> dict[str, Any]:
    """Predictions per window stacked by the version that made them, and the labels received."""
    starts = [w["window_start"] for w in performance]
    versions = sorted({int(v) for w in performance for v in w["versions"]})
    data = [
        {
            "type": "bar",
            "name": f"version {v}",
            "x": starts,
            "y": [w["versions"].get(v, w["versions"].get(str(v), 0)) for w in performance],
            "marker": {"color": _COLORS[i % len(_COLORS)]},
        }
        for i, v in enumerate(versions)
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "labelled",
            "x": starts,
            "y": [w["labels"] for w in performance],
            "line": {"color": "#333", "dash": "dot"},
        }
    )
    totals = [float(w["predictions"]) for w in performance]
    layout = _layout(
        "Predictions per window, by version, and labels received",
        barmode="stack",
        xaxis=_time_axis(starts, window_ms),
        yaxis=_count_axis(totals, "predictions"),
    )
    return {"data": data, "layout": layout}


def _metric_values(performance: list[dict[str, Any]], kind: str, metric: str) -> list[float | None]:
    out: list[float | None] = []
    for w in performance:
        value = (w.get(kind) or {}).get(metric)
        out.append(value if isinstance(value, int | float) and value == value else None)  # NaN -> gap
    return out


def performance_chart(
    performance: list[dict[str, Any]], window_ms: int, metric: str
) -> dict[str, Any] | None:
    """Realized ``metric`` per window (with enough labels), the label-free estimate, and label
    coverage on a second 0-1 axis. None when no window has either figure."""
    starts = [w["window_start"] for w in performance]
    realized = _metric_values(performance, "realized", metric)
    estimated = _metric_values(performance, "estimated", metric)
    if all(v is None for v in realized + estimated):
        return None
    bounded = metric in _PROBABILITY
    data = [
        {
            "type": "bar",
            "name": "label coverage",
            "x": starts,
            "y": [w["label_coverage"] for w in performance],
            "yaxis": "y2",
            "opacity": 0.2,
            "marker": {"color": "#888"},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"realized {metric}",
            "x": starts,
            "y": realized,
        },
    ]
    if any(v is not None for v in estimated):
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"estimated {metric} (no labels)",
                "x": starts,
                "y": estimated,
                "line": {"dash": "dot"},
            }
        )
    values = [v for v in realized + estimated if v is not None]
    y_range = [0, 1] if bounded else [min(0.0, *values), max(values) * 1.1 or 1.0]
    layout = _layout(
        f"Realized and estimated {metric} per window",
        xaxis=_time_axis(starts, window_ms),
        yaxis={"range": y_range, "title": {"text": metric}},
        yaxis2={"overlaying": "y", "side": "right", "range": [0, 1], "title": {"text": "label coverage"}},
    )
    return {"data": data, "layout": layout}


def _cell_text(d: dict[str, Any] | None) -> str:
    if d is None:
        return ""
    name, value = ("PSI", d["psi"]) if d["kind"] == "numeric" else ("JS", d["js"])
    shown = "n/a" if value is None or value != value else f"{value:.3f}"
    return f"{name} {shown}: {d.get('level', 'ok')}"


_LEVELS = ("ok", "warn", "alert")


def drift_heatmap(
    drift: list[dict[str, Any]], thresholds: dict[str, float], colours: dict[str, str], window_ms: int
) -> dict[str, Any] | None:
    """Each column's drift level per window (``ok``, ``warn``, ``alert``: absolute thresholds, see
    ``loopml.monitor.drift``) in the levels' fixed ``colours``, never scaled to the page's values;
    the PSI (numbers) or Jensen-Shannon distance (categories) in each cell's hover text."""
    if not drift:
        return None
    starts = sorted({d["window_start"] for d in drift})
    columns = sorted({d["column"] for d in drift}, key=lambda c: (c != "prediction", c))
    cell = {(d["column"], d["window_start"]): d for d in drift}

    def level(d: dict[str, Any] | None) -> int | None:
        return None if d is None else _LEVELS.index(d.get("level", "ok"))

    ok, warn, alert = (colours.get(k, "#999") for k in _LEVELS)
    colorscale = [[0, ok], [0.333, ok], [0.334, warn], [0.666, warn], [0.667, alert], [1, alert]]
    data = [
        {
            "type": "heatmap",
            "x": starts,
            "y": columns,
            "z": [[level(cell.get((c, s))) for s in starts] for c in columns],
            "text": [[_cell_text(cell.get((c, s))) for s in starts] for c in columns],
            "hoverinfo": "x+y+text",
            "zmin": 0,
            "zmax": 2,
            "colorscale": colorscale,
            "colorbar": {"tickvals": [0.33, 1, 1.67], "ticktext": list(_LEVELS)},
            "xgap": 1,
            "ygap": 1,
        }
    ]
    title = (
        f"Drift per window: warn from PSI {thresholds.get('psi_warn', 0.1)}, alert over PSI "
        f"{thresholds.get('psi', 0.25)} or Jensen-Shannon {thresholds.get('js', 0.1)} (when significant)"
    )
    layout = _layout(
        title,
        height=max(260, 60 + 22 * len(columns)),
        xaxis={**_time_axis(starts, window_ms), "showgrid": False},
        yaxis={"type": "category", "automargin": True},
        hovermode="closest",
    )
    return {"data": data, "layout": layout}


def overlay_curves(sides: list[tuple[str, dict[str, Any]]], curve: str) -> dict[str, Any] | None:
    """Two versions' ROC (``curve="roc"``) or precision-recall curves on one square 0-1 chart."""
    keys = {"roc": ("fpr", "tpr", "false positive rate", "true positive rate"),
            "pr": ("recall", "precision", "recall", "precision")}[curve]  # fmt: skip
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "x": c[curve][keys[0]],
            "y": c[curve][keys[1]],
            "line": {"color": _COLORS[i]},
        }
        for i, (name, c) in enumerate(sides)
        if c.get(curve)
    ]
    if not data:
        return None
    if curve == "roc":
        chance = {"type": "scatter", "mode": "lines", "name": "chance", "x": [0, 1], "y": [0, 1]}
        data.append({**chance, "line": {"dash": "dot", "color": "#999"}})
    title = "ROC curves on each version's holdout" if curve == "roc" else "Precision-recall on each holdout"
    layout = _layout(
        title,
        height=380,
        width=420,
        hovermode="closest",
        xaxis={"range": [0, 1], "title": {"text": keys[2]}, "constrain": "domain"},
        yaxis={"range": [0, 1.02], "title": {"text": keys[3]}, "scaleanchor": "x"},
    )
    return {"data": data, "layout": layout}


def residual_overlay(sides: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """Two versions' holdout residuals (binned counts), as step lines on one chart."""
    data = []
    lows, highs, tops = [], [], []
    for i, (name, c) in enumerate(sides):
        bins = c.get("residuals") or {}
        if not bins:
            continue
        edges, counts = bins["edges"], bins["counts"]
        mids = [(a + b) / 2 for a, b in pairwise(edges)]
        line = {"shape": "hvh", "color": _COLORS[i]}
        data.append({"type": "scatter", "mode": "lines", "line": line, "name": name, "x": mids, "y": counts})
        lows.append(edges[0])
        highs.append(edges[-1])
        tops.append(max(counts, default=0))
    if not data:
        return None
    layout = _layout(
        "Residuals (actual - predicted) on each version's holdout",
        hovermode="closest",
        xaxis={"range": [min(lows), max(highs)], "title": {"text": "residual"}},
        yaxis=_count_axis([float(t) for t in tops], "holdout rows"),
    )
    return {"data": data, "layout": layout}


def importance_bars(sides: list[tuple[str, dict[str, float]]], title: str) -> dict[str, Any] | None:
    """The top features of two versions side by side (horizontal bars, the union of their tops)."""
    names: list[str] = []
    for _, top in sides:
        names += [n for n in top if n not in names]
    if not names:
        return None
    names = names[:20][::-1]
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": names,
            "x": [top.get(n, 0.0) for n in names],
            "marker": {"color": _COLORS[i]},
        }
        for i, (name, top) in enumerate(sides)
    ]
    values = [float(v) for _, top in sides for v in top.values()]
    layout = _layout(
        title,
        height=max(320, 60 + 24 * len(names)),
        barmode="group",
        hovermode="closest",
        xaxis=_count_axis(values, "importance"),
        yaxis={"type": "category", "automargin": True},
    )
    return {"data": data, "layout": layout}


def waterfall(labels: list[str], values: list[float]) -> dict[str, Any]:
    """One prediction's contributions: the base value, each contribution, then the raw score."""
    measure = ["absolute", *(["relative"] * (len(values) - 2)), "total"]
    running, points = 0.0, [0.0]
    for m, v in zip(measure, values, strict=True):
        running = v if m != "relative" else running + v
        points.append(running)
    lo, hi = min(points), max(points)
    pad = (hi - lo) * 0.25 or 1.0
    data = [
        {
            "type": "waterfall",
            "orientation": "h",
            "measure": measure,
            "y": labels,
            "x": values,
            "text": [f"{v:+.4f}" for v in values],
            "textposition": "outside",
        }
    ]
    layout = _layout(
        "Contributions to the raw score",
        height=max(340, 40 * len(labels)),
        hovermode="closest",
        showlegend=False,
        xaxis={"range": [lo - pad, hi + pad], "title": {"text": "raw score"}},
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
    )
    return {"data": data, "layout": layout}
