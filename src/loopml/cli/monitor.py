"""``loopml monitor`` and ``loopml feedback``: how the model is doing in production."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._common import (
    JsonOpt,
    ProjectOpt,
    console,
    emit,
    err_console,
    fmt,
    handle_errors,
    open_project,
)

__all__ = ["feedback", "monitor"]


def _span(start: Any, end: Any) -> str:
    return f"{str(start)[:19]} to {str(end)[:19]}"


def _render(report: dict[str, Any]) -> None:
    w, perf = report["window"], report["performance"]
    console.print(
        f"[bold]{escape(report['model'])}[/] version {report['model_version']}: window "
        f"{_span(w['start'], w['end'])} (monitor.window {escape(w['length'])}, the latest), "
        f"{w['predictions']:,} predictions: drift and the estimate"
    )
    same = str(perf["window_start"]) == str(w["start"])
    console.print(
        ("realized performance in the same window" if same else
         f"realized performance in the window {_span(perf['window_start'], perf['window_end'])} "
         "(the latest with enough labels)")
        + f": predictions {perf['predictions']:,}, labels {perf['labels']:,} "
        f"(coverage {perf['label_coverage']:.1%})"
    )  # fmt: skip
    table = Table(title="performance")
    for col in ("metric", "realized", "estimated (no labels)"):
        table.add_column(col)
    realized, estimated = perf.get("realized") or {}, report["estimated_performance"]
    for metric in dict.fromkeys([*realized, *estimated]):
        table.add_row(fmt(metric), fmt(realized.get(metric)), fmt(estimated.get(metric)))
    console.print(table)
    drift = Table(title="drift (most drifted first)")
    for col in ("feature", "drifted", "PSI", "JS", "p-value", "bin that moved most"):
        drift.add_column(col)
    for d in report["drift"][:15]:
        top = d["top_bins"][0] if d["top_bins"] else {}
        moved = (
            f"{top.get('bin')}: {top.get('reference', 0):.1%} -> {top.get('current', 0):.1%}" if top else ""
        )
        drift.add_row(
            fmt(d["column"]),
            "yes" if d["drifted"] else "",
            fmt(d["psi"]),
            fmt(d["js"]),
            f"{d['p_value']:.2g}",
            escape(moved),
            style="bold red" if d["drifted"] else None,
        )
    if report["drift"]:
        console.print(drift)
    for note in report.get("no_verdict", []):
        console.print(f"[yellow]{escape(note[:1].upper() + note[1:])}.[/]")
    for alert in report["alerts"]:
        console.print(f"[bold red]ALERT[/] {escape(alert['kind'])}: {escape(alert['message'])}")


@handle_errors
def monitor(
    project: ProjectOpt = Path("."),
    model: Annotated[str, typer.Option(help="Version number or alias to monitor.")] = "champion",
    no_record: Annotated[bool, typer.Option("--no-record", help="Do not record alerts.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the dashboard page to this file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift and performance of the latest window (monitor.window), with alerts.

    Drift compares the logged inputs and predictions with the reference profile saved at training;
    realized performance uses the labels received so far (see `loopml feedback`) and is always shown
    with its label coverage, beside a label-free estimate.
    """
    proj = open_project(project)
    with err_console.status("monitoring ..."):
        report = proj.monitor.run(model, record=not no_record).to_dict()
    if html is not None:
        from loopml.dashboard import render_dashboard

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_dashboard(proj), encoding="utf-8")
        report["html"] = str(html)
    emit(report, as_json, lambda: _render(report))


@handle_errors
def feedback(
    input: Annotated[
        Path, typer.Option("--input", "-i", help="CSV or Parquet with prediction_id and label.")
    ],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Record ground truth for earlier predictions (labels arrive late and in bulk)."""
    proj = open_project(project)
    counts = proj.predictions.feedback_file(input).to_dict()
    emit(
        counts,
        as_json,
        lambda: console.print(
            f"{counts['accepted']:,} labels recorded; {counts['unknown_ids']:,} with unknown prediction ids."
        ),
    )
