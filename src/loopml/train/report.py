"""The training report: one small, self-contained HTML page, safe to mail around.

Rendered by ``templates/training_report.html.j2`` with autoescaping on: every name, value and
message is text, never markup. It carries derived figures only (metrics, thinned curves, binned
calibration and residuals, importances), never a holdout row; charts are static SVG, so the page
opens offline and runs no script.

Sections come from the builders in ``_SECTIONS``, each ``(result, context) -> list[Section]``;
another part of training adds its own section by adding a builder there (the retraining gate's
derived-feature checks go in ``_derived_sections``, shown when ``metrics["derived_features"]`` is set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.enums import TaskKind
from loopml.errors import LoopMLError
from loopml.scoring.explain import contribution_importance
from loopml.train.evaluate import residual_bins, roc_pr_curves
from loopml.train.fit import TrainResult
from loopml.validate.charts import (
    Charts,
    Note,
    Section,
    Series,
    Table,
    bar_chart,
    fmt,
    histogram,
    line_chart,
    nice_ticks,
    render,
)

__all__ = ["holdout_contributions", "holdout_curves", "render_report"]

_CONTRIBUTION_ROWS = 2000  # holdout rows explained for the global importance (drawn at random beyond)
_TOP = 25  # features drawn in the importance charts


@dataclass(frozen=True)
class _Context:
    """What the builders share: the champion's figures and the contributions, computed once."""

    champion: dict[str, Any] | None
    contributions: dict[str, float] = field(default_factory=dict)


def holdout_contributions(result: TrainResult) -> dict[str, float]:
    """Mean absolute contribution of each feature (the user's columns, window features by name) to
    the raw score over the holdout, largest first; empty for a model that cannot be explained."""
    try:
        return contribution_importance(result.pipeline, result.holdout, max_rows=_CONTRIBUTION_ROWS)
    except (LoopMLError, KeyError, ValueError):  # not explainable, or holdout rows are not its inputs
        return {}


# What each task keeps of its holdout to draw and compare later (derived figures, no row).
_CURVES: dict[TaskKind, Callable[[np.ndarray, np.ndarray], dict[str, Any]]] = {
    TaskKind.BINARY: roc_pr_curves,
    TaskKind.REGRESSION: lambda y, out: {"residuals": residual_bins(y, out)},
}


def holdout_curves(result: TrainResult) -> dict[str, Any]:
    """The holdout's thinned ROC and precision-recall curves (binary) or binned residuals
    (regression), kept with the version so that two versions can be overlaid; empty otherwise."""
    make = _CURVES.get(TaskKind(result.metrics["task"]))
    if make is None or np.asarray(result.holdout_output).ndim != 1:
        return {}
    return make(result.holdout_labels, result.holdout_output)


def _square(title: str, series: list[Series], x_title: str, y_title: str, top: float = 1.0) -> Any:
    return line_chart(
        series, title=title, x_title=x_title, y_title=y_title, x_range=(0, top), y_range=(0, top), square=True
    )


def _round_up(value: float) -> float:
    """The first round tick at or above ``value`` (so that every point lies inside the axes)."""
    ticks = nice_ticks(0.0, value)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else value
    return ticks[-1] if ticks[-1] >= value else ticks[-1] + step


def _binary_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    m = result.metrics
    curves = roc_pr_curves(result.holdout_labels, result.holdout_output, points=201)
    charts = []
    if curves:
        roc, pr = curves["roc"], curves["pr"]
        charts = [
            _square(
                f"ROC curve (AUC {fmt(m['holdout']['roc_auc'])})",
                [Series("model", roc["fpr"], roc["tpr"]), Series("chance", [0, 1], [0, 1], dash=True)],
                "false positive rate",
                "true positive rate",
            ),
            _square(
                f"Precision-recall (AP {fmt(m['holdout']['average_precision'])})",
                [Series("model", pr["recall"], pr["precision"])],
                "recall",
                "precision",
            ),
        ]
    cal = m.get("calibration", [])
    predicted, observed = [c["predicted"] for c in cal], [c["observed"] for c in cal]
    top = min(1.0, _round_up(max([*predicted, *observed, 0.01])))
    calibration = _square(
        "Calibration (quantile bins; equal axes)",
        [
            Series("model", predicted, observed, markers=True),
            Series("perfect", [0, top], [0, top], dash=True),
        ],
        "mean predicted probability",
        "observed rate",
        top=top,
    )
    c = m["confusion"]
    note = Note(
        f"Threshold {fmt(m['threshold'])}, chosen on the validation slice to minimise the cost "
        f"(cost on the holdout: {m['holdout_cost']:.1f})."
    )
    confusion = Table(
        ["", "predicted positive", "predicted negative"],
        [["actual positive", c["tp"], c["fn"]], ["actual negative", c["fp"], c["tn"]]],
    )
    bins = Table(["bin", "mean predicted", "observed rate", "rows"], [
        [i + 1, b["predicted"], b["observed"], b["count"]] for i, b in enumerate(cal)
    ])  # fmt: skip
    return [
        Section("Curves", [Charts(charts)] if charts else [Note("One class only on the holdout.")]),
        Section("Calibration", [Charts([calibration]), bins]),
        Section("Confusion matrix at the threshold", [note, confusion]),
    ]


def _regression_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    y = np.asarray(result.holdout_labels, dtype=float)
    predicted = np.asarray(result.holdout_output, dtype=float)
    order = np.argsort(predicted, kind="stable")
    parts = [p for p in np.array_split(order, min(20, len(order))) if len(p)]
    mean_pred = [float(predicted[p].mean()) for p in parts]
    mean_true = [float(y[p].mean()) for p in parts]
    lo, hi = min([*mean_pred, *mean_true]), max([*mean_pred, *mean_true])
    binned = line_chart(
        [
            Series("mean actual", mean_pred, mean_true, markers=True),
            Series("perfect", [lo, hi], [lo, hi], True),
        ],
        title="Actual against predicted (mean per 5% of predictions)",
        x_title="mean predicted",
        y_title="mean actual",
        x_range=(lo, hi),
        y_range=(lo, hi),
        square=True,
    )
    bins = residual_bins(y, predicted)
    charts = [binned]
    if bins:
        charts.append(
            histogram(
                bins["edges"], bins["counts"], title="Residuals (actual - predicted)", x_title="residual"
            )
        )
    return [Section("Residuals", [Charts(charts)])]


_TASK_SECTIONS: dict[TaskKind, Callable[[TrainResult, _Context], list[Section]]] = {
    TaskKind.BINARY: _binary_sections,
    TaskKind.REGRESSION: _regression_sections,
}


def _task_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    build = _TASK_SECTIONS.get(TaskKind(result.metrics["task"]))
    return build(result, ctx) if build is not None else []


def _warning_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    """The sanity warnings (:mod:`loopml.train.sanity`), each with the setting that deals with it."""
    rows = [
        [w["kind"], w["column"] or "", w["detail"], w["setting"]] for w in result.metrics.get("warnings", [])
    ]
    if not rows:
        return []
    return [Section("Sanity warnings", [Table(["kind", "column", "what was found", "setting"], rows)])]


def _selection_sections(result: TrainResult, ctx: _Context) -> list[Section]:
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
    blocks: list[Any] = [Note(f"{selection['summary']}."), Table(header, rows)]
    blocks.append(Note(f"Rule: {selection['rule']}.", "note"))
    for dropped in selection.get("dropped", []):
        blocks.append(
            Note(
                f"Dropped {', '.join(dropped['features'])}: {dropped['reason']} "
                f"(setting: {dropped['setting']})."
            )
        )
    return [Section("Model selection (validation slice)", blocks)]


def _bars(importance: dict[str, float], title: str) -> Any:
    top = list(importance.items())[:_TOP]
    return bar_chart([k for k, _ in top], [v for _, v in top], title=title, horizontal=True)


def _contribution_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    if not ctx.contributions:
        return []
    rows = min(len(result.holdout), _CONTRIBUTION_ROWS)
    note = Note(
        "Global importance: each feature's mean absolute contribution (TreeSHAP for trees, coefficient "
        f"times value for linear models) over {rows:,} holdout rows, in the raw score's units (log-odds "
        "for a classifier, the value for a regression), in the names of your columns (datetime parts "
        "and encoded categories summed into their column; window features by their own names). The "
        "same contributions as explain=true gives per prediction.",
        "note",
    )
    chart = _bars(ctx.contributions, "Mean |contribution| to the raw score on the holdout")
    return [Section("Feature contributions", [note, Charts([chart])])]


def _common_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    sections: list[Section] = []
    if result.importance:
        chart = _bars(result.importance, "Feature importance (share of total gain)")
        sections.append(Section("Feature importance", [Charts([chart])]))
    if result.tuning is not None and result.tuning.trials:
        done = [t for t in result.tuning.trials if t["value"] is not None]
        chart = line_chart(
            [Series("trial", [t["number"] for t in done], [t["value"] for t in done], markers=True)],
            title=f"Tuning: validation score by trial ({result.tuning.study_name})",
            x_title="trial",
            y_title="score",
        )
        sections.append(Section("Tuning", [Charts([chart])]))
    for column, rows in result.metrics.get("segments", {}).items():
        if rows:
            keys = [k for k in rows[0] if k not in ("value", "rows")]
            table = Table(
                [column, "rows", *keys], [[r["value"], r["rows"], *(r[k] for k in keys)] for r in rows]
            )
            sections.append(Section(f"Metrics by {column}", [table]))
    return sections


def _derived_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    """The model's derived inputs (window and preprocessing features), when training recorded them
    as ``metrics["derived_features"]``: a list of flat dicts, one per feature, shown as a table."""
    rows = result.metrics.get("derived_features") or []
    if not rows:
        return []
    header = list(rows[0])
    return [Section("Derived features", [Table(header, [[r.get(k, "") for k in header] for r in rows])])]


def _parameter_sections(result: TrainResult, ctx: _Context) -> list[Section]:
    return [
        Section("Parameters", [Table(["parameter", "value"], [[k, v] for k, v in result.params.items()])])
    ]


_SECTIONS: tuple[Callable[[TrainResult, _Context], list[Section]], ...] = (
    _warning_sections,
    _task_sections,
    _selection_sections,
    _contribution_sections,
    _common_sections,
    _derived_sections,
    _parameter_sections,
)


def _metrics_table(m: dict[str, Any], champion: dict[str, Any] | None) -> Table:
    header = ["metric", "model", "95% CI", "dummy baseline", *(["champion"] if champion else [])]
    rows = []
    for name, value in m["holdout"].items():
        ci = m.get("holdout_ci", {}).get(name)
        row = [name, value, f"{ci[0]:.4f} to {ci[1]:.4f}" if ci else "", m["baseline"].get(name, "")]
        if champion:
            row.append(champion["holdout"].get(name, ""))
        rows.append(row)
    return Table(header, rows, id="holdout-metrics")


def render_report(
    result: TrainResult,
    *,
    title: str,
    subtitle: str,
    champion: dict[str, Any] | None = None,
    contributions: dict[str, float] | None = None,
) -> str:
    """The HTML page for one training run (``contributions``: :func:`holdout_contributions`, when
    the caller has them already)."""
    m = result.metrics
    ctx = _Context(champion, holdout_contributions(result) if contributions is None else contributions)
    return render(
        "training_report.html.j2",
        "loopml.train",
        title=title,
        subtitle=subtitle,
        m=m,
        beats=_beats(m["score"], m["baseline_score"], m["greater_is_better"]),
        champion=champion,
        metrics_table=_metrics_table(m, champion),
        sections=[s for build in _SECTIONS for s in build(result, ctx)],
    )


def _beats(score: float | None, baseline: float | None, greater: bool) -> bool:
    if score is None or baseline is None:
        return False
    return score > baseline if greater else score < baseline
