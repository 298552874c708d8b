"""Static SVG charts and the Jinja environment of the reports that are mailed around.

A report must open offline, stay small and run no script, so its charts are plain SVG: the geometry
is computed here from binned summaries (never raw rows) and drawn by ``templates/chart.svg.j2``
with autoescaping on, so a column or category name is always text, never markup.

Examples
--------
>>> chart = bar_chart(["a", "b"], [3, 1], title="counts")
>>> [round(b.height) for b in chart.bars]
[224, 75]
>>> html = render("chart.svg.j2", chart=line_chart([Series("s", [0, 1], [0, 1])], title="<x>"))
>>> "&lt;x&gt;" in html and "<x>" not in html
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = [
    "Bar",
    "Chart",
    "Charts",
    "Note",
    "Section",
    "Series",
    "Table",
    "bar_chart",
    "environment",
    "fmt",
    "histogram",
    "line_chart",
    "nice_ticks",
    "render",
]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class Series:
    """One line: ``name``, its points, and how it is drawn."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    dash: bool = False
    markers: bool = False


@dataclass(frozen=True)
class Bar:
    """One bar in SVG coordinates, with its label and value for the tooltip."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass
class Chart:
    """An SVG chart: size, plot area, axes, and what is drawn in it (see ``chart.svg.j2``)."""

    title: str
    width: int = 520
    height: int = 300
    left: int = 56
    right: int = 16
    top: int = 28
    bottom: int = 48
    x_title: str = ""
    y_title: str = ""
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    rotate_x: bool = False
    y_grid: bool = True
    bars: list[Bar] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    legend: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class Note:
    """A paragraph of plain text (``css``: its class, e.g. ``note``)."""

    text: str
    css: str = ""
    kind: str = "note"


@dataclass(frozen=True)
class Table:
    """A table; numbers are right-aligned and formatted by :func:`fmt`."""

    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    id: str = ""
    kind: str = "table"


@dataclass(frozen=True)
class Charts:
    """Charts side by side (two to a row)."""

    charts: Sequence[Chart]
    kind: str = "charts"


@dataclass(frozen=True)
class Section:
    """A titled part of a report: its blocks in order."""

    title: str
    blocks: Sequence[Note | Table | Charts]


def fmt(value: Any) -> str:
    """A number for people: thousands separated, floats to 4 significant digits, NaN as n/a."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.4g}" if abs(value) >= 1000 else f"{value:.4g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values spanning ``[lo, hi]`` (1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_title: str = "",
    y_title: str = "",
    horizontal: bool = False,
    y_max: float | None = None,
) -> Chart:
    """Bars of ``values`` named ``labels`` (horizontal ones list their labels on the left; a label
    is cut to 30 characters under the chart, whole in its tooltip)."""
    longest = min(30, max((len(str(label)) for label in labels), default=4))
    if horizontal:
        chart = Chart(title, height=max(160, 60 + 18 * len(labels)), left=min(260, 12 + 6 * longest))
        chart.y_grid = False
    else:
        rotate = len(labels) > 8 or longest > 10
        chart = Chart(title, bottom=min(150, 12 + 6 * longest) if rotate else 48, rotate_x=rotate)
    chart.x_title, chart.y_title = x_title, y_title
    top = y_max if y_max is not None else max([0.0, *(float(v) for v in values)]) or 1.0
    ticks = nice_ticks(0.0, top)
    top = max(top, ticks[-1])
    if horizontal:
        scale = _scale(0.0, top, chart.left, chart.left + chart.plot_width)
        slot = chart.plot_height / max(len(labels), 1)
        for i, (label, value) in enumerate(zip(labels, values, strict=True)):
            y = chart.top + i * slot + slot * 0.15
            chart.bars.append(
                Bar(chart.left, y, scale(value) - chart.left, slot * 0.7, str(label), fmt(value))
            )
            chart.y_ticks.append(Tick(y + slot * 0.35, str(label)))
        chart.x_ticks = [Tick(scale(t), fmt(t)) for t in ticks]
        return chart
    scale = _scale(0.0, top, chart.top + chart.plot_height, chart.top)
    slot = chart.plot_width / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 30))  # at most about 30 labels under the axis
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x, base = chart.left + i * slot + slot * 0.1, chart.top + chart.plot_height
        chart.bars.append(Bar(x, scale(value), slot * 0.8, base - scale(value), str(label), fmt(value)))
        if i % every == 0:
            shown = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
            chart.x_ticks.append(Tick(x + slot * 0.4, shown))
    chart.y_ticks = [Tick(scale(t), fmt(t)) for t in ticks]
    return chart


def histogram(edges: Sequence[float], counts: Sequence[float], *, title: str, x_title: str = "") -> Chart:
    """Counts per bin, bins labelled by their (rounded) lower edge."""
    labels = [fmt(float(e)) for e in edges[:-1]]
    return bar_chart(labels, counts, title=title, x_title=x_title, y_title="rows")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_title: str = "",
    y_title: str = "",
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    square: bool = False,
) -> Chart:
    """Lines (and markers) of ``series``; a ``square`` chart has equal axes (calibration, ROC)."""
    chart = Chart(title, width=380 if square else 520, height=380 if square else 300)
    chart.x_title, chart.y_title = x_title, y_title
    xs = [float(v) for s in series for v in s.x if math.isfinite(v)]
    ys = [float(v) for s in series for v in s.y if math.isfinite(v)]
    x_lo, x_hi = x_range or (min(xs, default=0.0), max(xs, default=1.0))
    y_lo, y_hi = y_range or (min(ys, default=0.0), max(ys, default=1.0))
    sx = _scale(x_lo, x_hi, chart.left, chart.left + chart.plot_width)
    sy = _scale(y_lo, y_hi, chart.top + chart.plot_height, chart.top)
    chart.x_ticks = [Tick(sx(t), fmt(t)) for t in nice_ticks(x_lo, x_hi)]
    chart.y_ticks = [Tick(sy(t), fmt(t)) for t in nice_ticks(y_lo, y_hi)]
    for i, s in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        points = [
            (sx(x), sy(y)) for x, y in zip(s.x, s.y, strict=True) if math.isfinite(x) and math.isfinite(y)
        ]
        chart.lines.append(
            {
                "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
                "markers": [(round(x, 1), round(y, 1)) for x, y in points] if s.markers else [],
                "color": color,
                "dash": s.dash,
            }
        )
        chart.legend.append({"name": s.name, "color": color, "dash": s.dash})
    return chart


@cache
def environment(*packages: str) -> Any:
    """A Jinja environment with autoescaping on, loading templates from each package's
    ``templates`` folder and then from this one's (the chart macro)."""
    from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

    loaders = [PackageLoader(p, "templates") for p in (*packages, "loopml.validate")]
    env = Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined)
    env.filters["fmt"] = fmt
    return env


def render(template: str, *packages: str, **context: Any) -> str:
    """Render ``template`` (from ``packages``' templates, then this package's) with ``context``."""
    out: str = environment(*packages).get_template(template).render(**context)
    return out
