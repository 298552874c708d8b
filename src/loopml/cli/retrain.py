"""``loopml retrain``, ``loopml worker`` and ``loopml up``: the loop that keeps models current."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, err_console, handle_errors, open_project

if TYPE_CHECKING:
    from loopml.project import WorkerEvent

__all__ = ["retrain", "up", "worker"]


def _render(result: dict[str, Any]) -> None:
    verb = result["status"] == "dry_run" and result["retrain"] and not result["reasons"]
    if result["triggers"]:
        console.print("Triggers: " + escape("; ".join(result["triggers"])))
    else:
        console.print("No trigger fired.")
    if result.get("hint") and not result["ran"]:
        console.print(f"[yellow]Note[/]: {escape(result['hint'])}")
    if result["blocked_by"]:
        console.print(f"Held back by the {escape(result['blocked_by'])}")
    if result["status"] == "waiting":
        console.print(f"[yellow]Waiting[/]: {escape(result['skipped_because'] or '')}")
    elif result["status"] == "dry_run" and result["reasons"]:  # too few rows the champion never saw
        console.print(f"[yellow]Would wait[/]: {escape(result['skipped_because'] or '')}")
    elif result["status"] == "skipped" and result["reasons"]:  # e.g. another worker's cycle
        console.print(f"No cycle: {escape(result['skipped_because'])}.")
    if verb:
        console.print(
            "A cycle would run now: ingest, train a challenger, gate it against the champion, "
            "shadow it if retrain.shadow is set, promote."
        )
    if result["status"] == "shadowing":
        console.print(
            f"Challenger v{result['challenger_version']} is shadowing the champion: it scores live "
            "traffic unseen; the next run compares the two once the window is over and labels are in."
        )
    if result["ran"]:
        console.print(
            f"Cycle {result['status']}: challenger v{result['challenger_version']}, "
            f"champion v{result['champion_version']}"
        )
        table = Table(title="gate")
        for col in ("check", "passed", "detail"):
            table.add_column(col)
        for check in result["gate"]:
            table.add_row(
                escape(check["check"]), "yes" if check["passed"] else "[red]no[/]", escape(check["detail"])
            )
        if result["gate"]:
            console.print(table)


@handle_errors
def retrain(
    project: ProjectOpt = Path("."),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Explain what would happen and why; change nothing.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Run a cycle even if no trigger fired.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run one retraining cycle now if the policy says so (retrain: in loopml.yaml), or with --force.

    The challenger is judged on rows newer than everything the champion learned from (with too few,
    the cycle waits and says so): promoted only if it is not worse than the champion in expectation
    nor beyond retrain.gate.tolerance at the low end of a paired bootstrap interval, and no worse on
    each segment, calibration and latency than the tolerances allow. The cooldown and the schedule
    are measured on retrain.clock (wall, or event time for replays).
    """
    proj = open_project(project)
    with err_console.status("evaluating the retraining policy ..."):
        own, *others = proj.retrain.run(force=force, dry_run=dry_run)
    result = own.to_dict()
    if others:  # companion models (the maintenance failure model): one cycle each, on its own labels
        result["companions"] = {c.name: r.to_dict() for c, r in zip(proj.companions, others, strict=True)}
    emit(result, as_json, lambda: _render_all(result))


def _render_all(result: dict[str, Any]) -> None:
    _render(result)
    for name, other in result.get("companions", {}).items():
        console.print(f"[bold]{escape(name)}[/]")
        _render(other)


def _report(event: WorkerEvent) -> None:
    """The worker's log line for one of its events (on stderr)."""
    if event.name == "started":
        interval = event.details["interval_s"]
        err_console.print(f"worker for [bold]{escape(event.model)}[/]: checking every {interval:g} s")
    elif event.name == "upkeep":
        done = event.details
        err_console.print(
            f"prediction log: {done['replayed']:,} replayed from the journal, {done['pruned']:,} pruned; "
            f"{done['pruned_actions']:,} finished actions pruned from the outbox"
        )
    elif event.name == "upkeep_failed":
        err_console.print(f"[red]prediction log upkeep failed[/]: {escape(event.message)}")
    elif event.name == "busy":
        err_console.print(f"another worker is running a cycle: {escape(event.message)}")
    elif event.name == "failed":
        err_console.print(f"[red]cycle failed[/]: {escape(event.message)}")
    elif event.name == "tick" and event.tick is not None:
        rolled, cycle = event.tick.rollback, event.tick.cycle
        if rolled:
            err_console.print(
                f"{escape(event.model)}: rolled back v{rolled.from_version} -> v{rolled.to_version} "
                f"({escape(rolled.reason)})"
            )
        if cycle.ran:
            err_console.print(
                f"{escape(event.model)}: cycle {cycle.status}: challenger v{cycle.challenger_version}"
            )
        else:  # every skipped cycle says why
            err_console.print(f"{escape(event.model)}: no cycle: {escape(cycle.skipped_because or '')}")


def _reporter(as_json: bool) -> Callable[[WorkerEvent], None]:
    """The worker's events: log lines on stderr, or with ``--json`` one JSON object a line on stdout."""

    def report(event: WorkerEvent) -> None:
        emit(event.to_dict(), as_json, lambda: _report(event))
        if as_json:
            sys.stdout.flush()  # a pipe is block-buffered: each event goes out when it happens

    return report


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


@handle_errors
def worker(
    project: ProjectOpt = Path("."),
    once: Annotated[bool, typer.Option("--once", help="Check the policy once, then exit.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as one JSON object a line on stdout.")
    ] = False,
) -> None:
    """Check the retraining policy every retrain.interval_s seconds; run cycles; watch promotions;
    deliver the actions in the outbox (every actions.interval_s seconds, in a thread).

    Safe to stop, or kill, at any point: a promotion is one transaction (alias, its history and the
    cycle's event), so a cycle is either not promoted or fully promoted; the next run resumes an
    interrupted cycle that had a challenger and abandons one that had not. One cycle per model runs
    at a time however many workers share the store.
    """
    proj = open_project(project)
    stop = threading.Event()
    _stop_on_signals(stop)
    proj.worker.run(stop, once=once, on_event=_reporter(as_json))


@handle_errors
def up(
    project: ProjectOpt = Path("."),
    host: Annotated[str | None, typer.Option(help="API bind address (default from loopml.yaml).")] = None,
    port: Annotated[int | None, typer.Option(help="API port (default from loopml.yaml).")] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Also serve the v2 inference protocol over gRPC here (0: a free port)."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the API's start and each worker event as one JSON object a line on stdout."
        ),
    ] = False,
) -> None:
    """Run the API (a child process) and the worker (this process) together; Ctrl+C stops both."""
    proj = open_project(project)
    command = [sys.executable, "-m", "loopml", "serve", "--project", str(project)]
    command += [*(["--host", host] if host else []), *(["--port", str(port)] if port else [])]
    command += ["--grpc-port", str(grpc_port)] if grpc_port is not None else []
    command += ["--json"] if as_json else []
    api = subprocess.Popen(command)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        proj.worker.run(stop, on_event=_reporter(as_json))
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)
