"""``loopml models``: list, show, promote, rollback, history and diff of registered versions."""

from __future__ import annotations

import getpass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
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
    from loopml.registry import list_versions

    proj = open_project(project)
    versions = [_summary(v) for v in list_versions(proj.store.engine, proj.name)]

    def render() -> None:
        table = Table(title=f"model {proj.name}")
        for col in ("version", "aliases", "created", "data", "metric", "score", "baseline"):
            table.add_column(col)
        for v in versions:
            table.add_row(
                str(v["version"]),
                ", ".join(v["aliases"]),
                f"{v['created_at']:%Y-%m-%d %H:%M}",
                fmt(v["dataset_version"]),
                str(v["metric"]),
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
    from loopml.registry import alias_history, resolve

    proj = open_project(project)
    v = resolve(proj.store.engine, proj.name, version)
    payload = {
        **_summary(v),
        "metrics": v.metrics,
        "input_columns": v.signature["input_columns"],
        "params": v.signature.get("params"),
        "code_version": v.signature.get("code_version"),
        "artifact": v.artifact_key,
        "alias_history": [_change(h) for h in alias_history(proj.store.engine, proj.name)],
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
    from loopml.registry import set_alias

    proj = open_project(project)
    change = set_alias(proj.store.engine, proj.name, alias, version, reason=reason, actor=_actor())
    emit(
        _change(change),
        as_json,
        lambda: console.print(f"{alias}: version {change.previous_version} -> {change.version} ({reason})"),
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
    from loopml.registry import rollback as roll_back

    proj = open_project(project)
    change = roll_back(proj.store.engine, proj.name, alias, reason=reason, actor=_actor())
    emit(
        _change(change),
        as_json,
        lambda: console.print(f"{alias}: version {change.previous_version} -> {change.version} ({reason})"),
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
    from loopml.registry import alias_at, alias_history

    proj = open_project(project)
    if at is not None:
        when = _parse_time(at)
        name = alias or "champion"
        version = alias_at(proj.store.engine, proj.name, name, when)
        payload = {"alias": name, "at": when, "version": version}
        emit(
            payload,
            as_json,
            lambda: console.print(
                f"{name} at {when.isoformat()}: " + (f"version {version}" if version else "no version yet")
            ),
        )
        return
    moves = [_change(h) for h in alias_history(proj.store.engine, proj.name, alias)]

    def render() -> None:
        table = Table(title=f"alias history of {proj.name}")
        for col in ("at", "alias", "from", "to", "actor", "reason"):
            table.add_column(col)
        for m in moves:
            table.add_row(
                f"{m['at']:%Y-%m-%d %H:%M:%S}",
                m["alias"],
                fmt(m["previous_version"]),
                fmt(m["version"]),
                m["actor"],
                m["reason"],
            )
        console.print(table if moves else "No alias has been set yet.")

    emit({"model": proj.name, "history": moves}, as_json, render)


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--at '{text}' is not an ISO 8601 time, e.g. 2026-05-01T12:00:00.") from None


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif not isinstance(value, list):
        out[prefix] = value
    return out


def _comparable(v: Any) -> dict[str, Any]:
    metrics = {k: v.metrics.get(k) for k in ("holdout", "score", "threshold", "dataset_version")}
    sig = v.signature
    fields = {
        "metrics": metrics,
        "params": sig.get("params", {}),
        "input_columns": ",".join(sig["input_columns"]),
    }
    return _flatten("", fields, {})


@app.command("diff")
@handle_errors
def diff(
    a: Annotated[str, typer.Argument(help="First version (number or alias).")],
    b: Annotated[str, typer.Argument(help="Second version (number or alias).")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """What differs between two versions: metrics, parameters, data, inputs."""
    from loopml.registry import resolve

    proj = open_project(project)
    va, vb = (resolve(proj.store.engine, proj.name, ref) for ref in (a, b))
    left, right = _comparable(va), _comparable(vb)
    changed = {
        k: [left.get(k), right.get(k)] for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)
    }

    def render() -> None:
        table = Table(title=f"{proj.name}: version {va.version} vs {vb.version}")
        for col in ("field", f"v{va.version}", f"v{vb.version}"):
            table.add_column(col)
        for key, (x, y) in changed.items():
            table.add_row(key, fmt(x), fmt(y))
        console.print(table if changed else "No differences.")

    emit({"a": va.version, "b": vb.version, "changed": changed}, as_json, render)
