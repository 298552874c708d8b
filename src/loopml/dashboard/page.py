"""The dashboard's pages, rendered from Jinja templates (``templates/``) with autoescaping on.

Three pages: the overview (status, alerts, volume, performance, drift, actions, retraining), the
model page (two versions side by side; promote and roll back through the admin API; the alias
history) and "why this prediction". Figures travel as JSON inside the page and are drawn by the
static ``dashboard.js`` with plotly.js, both served once with long cache headers (see
:mod:`loopml.dashboard.router`); long tables are paginated on the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from loopml.dashboard.actions_panel import actions_panel
from loopml.dashboard.assets import assets
from loopml.dashboard.explain_panel import explanation_panel
from loopml.dashboard.figures import (
    drift_heatmap,
    importance_bars,
    overlay_curves,
    performance_chart,
    residual_overlay,
    volume_chart,
)

if TYPE_CHECKING:
    from loopml.project import LoadedModel, Project

__all__ = ["PER_PAGE", "Pager", "dashboard_data", "render_dashboard", "render_explain", "render_models"]

PER_PAGE = 20  # rows of a long table per page


@dataclass(frozen=True)
class Pager:
    """One page of a long table: its ``rows``, which page of how many, and links to the others."""

    rows: list[list[Any]]
    page: int
    pages: int
    total: int
    param: str
    query: Mapping[str, Any]

    @classmethod
    def of(cls, rows: list[list[Any]], query: Mapping[str, Any], param: str) -> Pager:
        pages = max(1, math.ceil(len(rows) / PER_PAGE))
        try:
            page = min(max(1, int(query.get(param) or 1)), pages)
        except (TypeError, ValueError):
            page = 1
        start = (page - 1) * PER_PAGE
        return cls(rows[start : start + PER_PAGE], page, pages, len(rows), param, dict(query))

    def link(self, page: int) -> str:
        return "?" + urlencode(
            {**{k: v for k, v in self.query.items() if v not in (None, "")}, self.param: page}
        )


@cache
def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("loopml.dashboard", "templates"), autoescape=True, undefined=StrictUndefined
    )


def _render(template: str, project: Project, page: str, standalone: bool, **context: Any) -> str:
    out: str = (
        _environment()
        .get_template(template)
        .render(
            model=project.name,
            alias=project.settings.serve.alias,
            page=page,
            prefix="",
            standalone=standalone,
            assets=assets(),
            **context,
        )
    )
    return out


def dashboard_data(project: Project) -> dict[str, Any]:
    """Everything the overview shows, as plain data (also what the tests check against the page)."""
    return project.monitor.dashboard().to_dict()


def _metric(data: dict[str, Any]) -> str | None:
    """The metric to draw: the champion's primary one when the windows have it, else the first they have."""
    found = [
        k for w in data["performance"] for kind in ("realized", "estimated") for k in (w.get(kind) or {})
    ]
    if not found:
        return None
    return data["metric"] if data["metric"] in found else found[0]


def _latest(data: dict[str, Any]) -> dict[str, Any] | None:
    """The newest recorded monitoring pass: its drift per input (drifted first, then by statistic)."""
    found = data.get("latest_pass")
    if not found:
        return None
    drift = found.get("drift") or {}
    items = sorted(
        drift.items(),
        key=lambda kv: (not kv[1].get("drifted"), -float(kv[1].get("psi") or kv[1].get("js") or 0)),
    )
    keys = [
        k for k in ("level", "psi", "js", "p_value", "importance", "drifted") if any(k in v for _, v in items)
    ]
    rows = [[name, *(_cell(v.get(k)) for k in keys)] for name, v in items[:PER_PAGE]]
    return {**found, "header": ["input", *keys], "rows": rows}


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4g}"
    return "" if value is None else value


def render_dashboard(
    project: Project,
    prediction_id: str | None = None,
    *,
    query: Mapping[str, Any] | None = None,
    standalone: bool = True,
) -> str:
    """The overview page. ``standalone`` (``loopml monitor --html``): one file with plotly.js and the
    page's script inline, to open offline; served, the page links them as cached static assets.
    (``prediction_id`` is kept for callers of the single-page dashboard: see :func:`render_explain`.)"""
    query = dict(query or {})
    data = dashboard_data(project)
    window_ms = data["window_ms"] or 86_400_000
    metric = _metric(data)
    perf = data["performance"]
    figures = {
        "volume": volume_chart(perf, window_ms) if perf else None,
        "performance": performance_chart(perf, window_ms, metric) if perf and metric else None,
        "drift": drift_heatmap(data["drift"], data["thresholds"], data["level_colours"], window_ms),
    }
    alerts = [[a["at"], a["kind"], a["message"]] for a in data["alerts"]]
    windows = [
        [
            w["window_start"][:16].replace("T", " "),
            w["predictions"],
            w["labels"],
            ", ".join(f"version {v}: {n:,}" for v, n in w["versions"].items()),
        ]
        for w in reversed(perf)
    ]
    cycles = [[c["at"], c["kind"], c["status"], c["challenger"] or "", c["why"]] for c in data["cycles"]]
    moves = [
        [h["at"], h["alias"], h["from"] or "", h["to"], h["actor"], h["reason"]] for h in data["history"]
    ]
    return _render(
        "overview.html.j2",
        project,
        "overview",
        standalone,
        data=data,
        figures=figures,
        latest=_latest(data),
        alerts=Pager.of(alerts, query, "alerts_page"),
        windows=Pager.of(windows, query, "windows_page"),
        cycles=Pager.of(cycles, query, "cycles_page"),
        moves=Pager.of(moves, query, "moves_page"),
        actions=actions_panel(data["actions"]),
    )


def render_explain(
    project: Project,
    prediction_id: str | None = None,
    *,
    served: LoadedModel | None = None,
    standalone: bool = False,
) -> str:
    """The "why this prediction" page (``prediction_id``, else the newest logged prediction;
    ``served``: the model the server serves, see :func:`.explain_panel.explanation_panel`)."""
    panel = explanation_panel(project, prediction_id, served)
    return _render("explain.html.j2", project, "explain", standalone, panel=panel)


def _pair(project: Project, choices: list[int], a: int | None, b: int | None) -> tuple[int, int]:
    """The versions to compare: those asked for, else the champion and the newest other version."""
    champion = project.models.alias(project.settings.serve.alias)
    first = a if a in choices else champion if champion in choices else choices[0]
    others = [v for v in choices if v != first] or [first]
    return first, b if b in choices else others[0]


def _model_figures(sides: list[Any]) -> dict[str, Any]:
    """The model page's charts: both versions' curves overlaid and their top features side by side."""
    named = [(f"version {s.version}", s.curves) for s in sides]
    kinds = {s.top_features_kind for s in sides if s.top_features}
    return {
        "roc": overlay_curves(named, "roc"),
        "pr": overlay_curves(named, "pr"),
        "residuals": residual_overlay(named),
        "features": importance_bars(
            [(f"version {s.version}", s.top_features) for s in sides],
            "Top features (" + (" / ".join(sorted(kinds)) or "importance") + ")",
        ),
    }


def _history_rows(history: list[Any]) -> list[list[Any]]:
    return [
        [str(h.created_at)[:19], h.alias, h.previous_version or "", h.version, h.actor, h.reason]
        for h in history
    ]


def _version_rows(versions: list[Any]) -> list[list[Any]]:
    def score(v: Any) -> str:
        found = v.metrics.get("score")
        return f"{found:.4f}" if isinstance(found, int | float) else ""

    return [
        [
            v.version,
            ", ".join(v.aliases),
            v.metrics.get("metric") or "",
            score(v),
            v.metrics.get("dataset_version") or "",
            str(v.created_at)[:19],
        ]
        for v in versions
    ]


def render_models(
    project: Project,
    a: int | None = None,
    b: int | None = None,
    *,
    query: Mapping[str, Any] | None = None,
    standalone: bool = False,
) -> str:
    """The model page: versions ``a`` and ``b`` side by side (the champion and the newest other
    version by default), promote and roll back buttons, the alias history and every version."""
    query = dict(query or {})
    versions = project.models.versions()
    if not versions:
        return _render("models.html.j2", project, "models", standalone, compare=None)
    choices = [v.version for v in versions]
    compare = project.models.compare(*_pair(project, choices, a, b))
    sides = [compare.a, compare.b]
    history = list(reversed(project.models.history()))
    moves = [h for h in history if h.alias == project.settings.serve.alias]
    return _render(
        "models.html.j2",
        project,
        "models",
        standalone,
        compare=compare,
        sides=sides,
        choices=choices,
        figures=_model_figures(sides),
        rollback_to=moves[0].previous_version if moves else None,
        admin_enabled=project.settings.serve.admin_token is not None,
        history=Pager.of(_history_rows(history), query, "history_page"),
        versions=Pager.of(_version_rows(versions), query, "versions_page"),
    )
