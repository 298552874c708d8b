"""``loopml actions``: what the outbox holds, re-queueing dead actions, and delivering now."""

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

__all__ = ["app"]

app = typer.Typer(
    help="Actions triggered by predictions and alerts (actions: in loopml.yaml): the outbox, its "
    "deliveries, dead letters and replays. `loopml worker` delivers them continuously.",
    no_args_is_help=True,
)


def _span(seconds: float) -> str:
    """``27h35m``, ``10h``, ``5m``, ``0.5s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return (f"{hours}h{minutes:02d}m" if minutes else f"{hours}h") if hours else f"{minutes}m"


def _render_list(summary: dict[str, Any]) -> None:
    counts = ", ".join(f"{summary[s]:,} {s}" for s in ("pending", "delivered", "dead", "suppressed"))
    console.print(f"Actions: {counts} ({summary['total']:,} in all)")
    console.print(
        f"Retries: at most {_span(summary['max_delay_s'])} apart, for {_span(summary['retry_horizon_s'])} "
        "in all (the retry horizon); then an action is dead"
    )
    for item in summary["down_endpoints"]:
        console.print(
            f"[red]endpoint {escape(item['endpoint'])} is down[/] since {str(item['down_since'])[:19]} "
            f"({item['failures']} failed attempts; next probe {str(item['next_probe_at'])[:19]}): "
            f"{escape(str(item['last_error']))}; its actions wait"
        )
    for item in summary["disabled_endpoints"]:
        endpoint = escape(item["endpoint"])
        console.print(
            f"[red]endpoint {endpoint} is disabled[/] since {str(item['since'])[:19]}: "
            f"{escape(item['reason'])} (re-enable: loopml actions replay --endpoint {endpoint})"
        )
    if summary["recent"]:
        table = Table(title="newest actions")
        for column in ("id", "rule", "endpoint", "status", "attempts", "last error", "created"):
            table.add_column(column)
        for a in summary["recent"]:
            error = escape((a["last_error"] or "")[:60])
            created = str(a["created_at"])[:19]
            table.add_row(*(fmt(v) for v in (a["id"], a["rule"], a["endpoint"], a["status"], a["attempts"])),
                          error, created)  # fmt: skip
        console.print(table)


@app.command("list")
@handle_errors
def list_actions(
    project: ProjectOpt = Path("."),
    status: Annotated[
        str | None, typer.Option(help="Show only pending, delivered, dead or suppressed actions.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="How many of the newest actions to show.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Counts per status (pending, delivered, dead, suppressed), per action kind and per endpoint,
    endpoints disabled by HTTP 410 or down, the retry schedule (longest delay, horizon), and the
    newest actions.

    Example: loopml actions list --status dead --json
    """
    proj = open_project(project)
    summary = proj.actions.summary().to_dict()
    del summary["dead_recent"]
    summary["recent"] = [a.to_dict() for a in proj.actions.recent(status=status, limit=limit)]
    emit(summary, as_json, lambda: _render_list(summary))


@app.command()
@handle_errors
def replay(
    project: ProjectOpt = Path("."),
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="Replay this dead action (repeatable).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Replay this endpoint's dead actions and re-enable it.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-queue dead actions (all of them by default) and re-enable endpoints disabled by HTTP 410.

    A replayed action keeps its idempotency key (webhook-id), so a receiver that already has it
    drops the copy. The worker delivers it on its next tick, or run `loopml actions dispatch`.
    """
    proj = open_project(project)
    result = proj.actions.replay(ids=ids or None, endpoint=endpoint).to_dict()
    enabled = f"; re-enabled {escape(', '.join(result['enabled']))}" if result["enabled"] else ""
    emit(result, as_json, lambda: console.print(f"Re-queued {result['replayed']:,} dead actions{enabled}."))


@app.command()
@handle_errors
def dispatch(
    project: ProjectOpt = Path("."),
    timeout: Annotated[float, typer.Option(min=0.1, help="Stop after this many seconds.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Deliver every due action now, then exit (what `loopml worker` does continuously)."""
    proj = open_project(project)
    with err_console.status("delivering due actions ..."):
        attempts = proj.actions.dispatch(timeout=timeout)
    summary = proj.actions.summary()
    counts = {k: getattr(summary, k) for k in ("pending", "delivered", "dead", "suppressed")}
    result = {"attempts": attempts, **counts}
    emit(
        result,
        as_json,
        lambda: console.print(
            f"{attempts:,} delivery attempts; now {result['pending']:,} pending, "
            f"{result['delivered']:,} delivered, {result['dead']:,} dead."
        ),
    )
