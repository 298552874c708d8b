"""``loopml models``: list, show, promote, rollback, history and diff of registered versions."""

from __future__ import annotations

import getpass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, fmt, handle_errors, open_project
from loopml.errors import InputError

__all__ = ["app"]

app = typer.Typer(
    help="Registered model versions and their aliases (champion, challenger, shadow).", no_args_is_help=True
)

ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why: recorded in the alias history.")]
AliasOpt = Annotated[str, typer.Option("--alias", "-a", help="Alias to move.")]


def _summary(v: Any) -> dict[str, Any]:
    hold = v.metrics.get("holdout", {})
    return {
        "name": v.name,
        "version": v.version,
        "aliases": list(v.aliases),
        "created_at": v.created_at,
        "sha256": v.sha256,
        "metric": v.metrics.get("metric"),
        "score": v.metrics.get("score"),
        "baseline_score": v.metrics.get("baseline_score"),
        "roc_auc": hold.get("roc_auc"),
        "average_precision": hold.get("average_precision"),
        "dataset_version": v.signature.get("dataset_version"),
    }


def _change(h: Any) -> dict[str, Any]:
    return {
        "alias": h.alias,
        "version": h.version,
        "previous_version": h.previous_version,
        "reason": h.reason,
        "actor": h.actor,
        "at": h.created_at,
    }


def _actor() -> str:
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


@app.command("list")
@handle_errors
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every version of the project's model, newest first."""
    proj = open_project(project)
    versions = [_summary(v) for v in proj.models.versions()]

    def render() -> None:
        table = Table(title=f"model {escape(proj.name)}")
        for col in ("version", "aliases", "created", "data", "metric", "score", "baseline"):
            table.add_column(col)
        for v in versions:
            table.add_row(
                str(v["version"]),
                fmt(", ".join(v["aliases"])),
                f"{v['created_at']:%Y-%m-%d %H:%M}",
                fmt(v["dataset_version"]),
                fmt(str(v["metric"])),
                fmt(v["score"]),
                fmt(v["baseline_score"]),
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
    """One version: metrics, inputs, lineage, artifact checksum and alias history."""
    proj = open_project(project)
    v = proj.models.get(version)
    payload = {
        **_summary(v),
        "metrics": v.metrics,
        "input_columns": v.signature["input_columns"],
        "params": v.signature.get("params"),
        "code_version": v.signature.get("code_version"),
        "artifact": v.artifact_key,
        "alias_history": [_change(h) for h in proj.models.history()],
    }
    emit(payload, as_json, lambda: console.print_json(data=payload, default=str))


@app.command("promote")
@handle_errors
def promote(
    version: Annotated[int, typer.Argument(help="Version number to promote.")],
    reason: ReasonOpt = "manual promotion",
    alias: AliasOpt = "champion",
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Point an alias (champion by default) at a version; the API follows within a second."""
    proj = open_project(project)
    change = proj.models.promote(version, alias=alias, reason=reason, actor=_actor())
    emit(
        _change(change),
        as_json,
        lambda: console.print(
            f"{escape(alias)}: version {change.previous_version} -> {change.version} ({escape(reason)})"
        ),
    )


@app.command("rollback")
@handle_errors
def rollback(
    reason: ReasonOpt = "manual rollback",
    alias: AliasOpt = "champion",
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Point an alias back at the version it held before its latest move."""
    proj = open_project(project)
    change = proj.models.rollback(alias=alias, reason=reason, actor=_actor())
    emit(
        _change(change),
        as_json,
        lambda: console.print(
            f"{escape(alias)}: version {change.previous_version} -> {change.version} ({escape(reason)})"
        ),
    )


@app.command("history")
@handle_errors
def history(
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    at: Annotated[
        str | None, typer.Option(help="Which version held the alias at this time (ISO 8601).")
    ] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Every alias move (when, who, why); with --at, which version held the alias at that time."""
    proj = open_project(project)
    if at is not None:
        when = _parse_time(at)
        name = alias or "champion"
        version = proj.models.alias_at(when, name)
        payload = {"alias": name, "at": when, "version": version}
        emit(
            payload,
            as_json,
            lambda: console.print(
                f"{escape(name)} at {when.isoformat()}: "
                + (f"version {version}" if version else "no version yet")
            ),
        )
        return
    moves = [_change(h) for h in proj.models.history(alias)]

    def render() -> None:
        table = Table(title=f"alias history of {escape(proj.name)}")
        for col in ("at", "alias", "from", "to", "actor", "reason"):
            table.add_column(col)
        for m in moves:
            table.add_row(
                f"{m['at']:%Y-%m-%d %H:%M:%S}",
                fmt(m["alias"]),
                fmt(m["previous_version"]),
                fmt(m["version"]),
                fmt(m["actor"]),
                fmt(m["reason"]),
            )
        console.print(table if moves else "No alias has been set yet.")

    emit({"model": proj.name, "history": moves}, as_json, render)


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--at '{text}' is not an ISO 8601 time, e.g. 2026-05-01T12:00:00.") from None


@app.command("diff")
@handle_errors
def diff(
    a: Annotated[str, typer.Argument(help="First version (number or alias).")],
    b: Annotated[str, typer.Argument(help="Second version (number or alias).")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """What differs between two versions: metrics, parameters, data, inputs."""
    proj = open_project(project)
    found = proj.models.diff(a, b)

    def render() -> None:
        table = Table(title=f"{escape(proj.name)}: version {found.a} vs {found.b}")
        for col in ("field", f"v{found.a}", f"v{found.b}"):
            table.add_column(col)
        for key, (x, y) in found.changed.items():
            table.add_row(fmt(key), fmt(x), fmt(y))
        console.print(table if found.changed else "No differences.")

    emit(found.to_dict(), as_json, render)
