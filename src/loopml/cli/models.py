"""``loopml models``: list and show registered versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, handle_errors, open_project

__all__ = ["app"]

app = typer.Typer(help="Registered model versions and their aliases.", no_args_is_help=True)


def _summary(v: Any) -> dict[str, Any]:
    hold = v.metrics.get("holdout", {})
    return {
        "name": v.name,
        "version": v.version,
        "aliases": list(v.aliases),
        "created_at": v.created_at,
        "sha256": v.sha256,
        "roc_auc": hold.get("roc_auc"),
        "average_precision": hold.get("average_precision"),
    }


@app.command("list")
@handle_errors
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every version of the project's model, newest first."""
    from loopml.registry import list_versions

    proj = open_project(project)
    versions = [_summary(v) for v in list_versions(proj.store.engine, proj.name)]

    def render() -> None:
        table = Table(title=f"model {proj.name}")
        for col in ("version", "aliases", "created", "ROC AUC", "AP"):
            table.add_column(col)
        for v in versions:
            table.add_row(
                str(v["version"]),
                ", ".join(v["aliases"]),
                f"{v['created_at']:%Y-%m-%d %H:%M}",
                f"{v['roc_auc']:.4f}",
                f"{v['average_precision']:.4f}",
            )
        console.print(table if versions else "No versions yet: run `loopml train`.")

    emit({"model": proj.name, "versions": versions}, as_json, render)


@app.command("show")
@handle_errors
def show(
    version: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """One version: metrics, inputs, artifact checksum and alias history."""
    from loopml.registry import alias_history, resolve

    proj = open_project(project)
    v = resolve(proj.store.engine, proj.name, version)
    history = [
        {
            "alias": h.alias,
            "version": h.version,
            "previous_version": h.previous_version,
            "reason": h.reason,
            "actor": h.actor,
            "at": h.created_at,
        }
        for h in alias_history(proj.store.engine, proj.name)
    ]
    payload = {
        **_summary(v),
        "metrics": v.metrics,
        "input_columns": v.signature["input_columns"],
        "artifact": v.artifact_key,
        "alias_history": history,
    }
    emit(payload, as_json, lambda: console.print_json(data=payload, default=str))
