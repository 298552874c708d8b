"""``loopml retrain``, ``loopml worker`` and ``loopml up``: the loop that keeps models current."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, err_console, handle_errors, open_project
from loopml.errors import BusyError

__all__ = ["retrain", "up", "worker"]


def _render(result: dict[str, Any]) -> None:
    verb = "would retrain" if result["status"] == "dry_run" and result["retrain"] else None
    if result["triggers"]:
        console.print("Triggers: " + "; ".join(result["triggers"]))
    else:
        console.print("No trigger fired.")
    if result["blocked_by"]:
        console.print(f"Held back by the {result['blocked_by']}")
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
            table.add_row(check["check"], "yes" if check["passed"] else "[red]no[/]", check["detail"])
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

    A challenger is promoted only if it beats the champion on the same newest labelled rows by
    retrain.gate.min_improvement, no segment is worse than the tolerance, and its calibration is sane.
    """
    proj = open_project(project)
    with err_console.status("evaluating the retraining policy ..."):
        own, *others = proj.retrain(force=force, dry_run=dry_run)
    result = own.to_dict()
    if others:  # companion models (the maintenance failure model): one cycle each, on its own labels
        result["companions"] = {c.name: r.to_dict() for c, r in zip(proj.companions, others, strict=True)}
    emit(result, as_json, lambda: _render_all(result))


def _render_all(result: dict[str, Any]) -> None:
    _render(result)
    for name, other in result.get("companions", {}).items():
        console.print(f"[bold]{name}[/]")
        _render(other)


def _actions_thread(proj: Any, stop: threading.Event) -> threading.Thread | None:
    """The outbox dispatcher (actions: in loopml.yaml), delivering beside the retraining loop."""
    from loopml.actions import run_dispatcher

    if not proj.settings.actions.endpoints:
        return None
    args = (proj.settings, proj.store.engine, stop)
    thread = threading.Thread(target=run_dispatcher, args=args, name="loopml-actions", daemon=True)
    thread.start()
    return thread


def _tend_prediction_log(proj: Any) -> None:
    """Replay journals of killed API processes, then apply store.retention (never stops the worker)."""
    from loopml.actions import enqueue_for_predictions
    from loopml.store import tend_prediction_log

    try:
        done = tend_prediction_log(
            proj.settings, proj.store.engine, on_write=enqueue_for_predictions(proj.settings)
        )
    except Exception as exc:
        err_console.print(f"[red]prediction log upkeep failed[/]: {type(exc).__name__}: {exc}")
        return
    if done["replayed"] or done["pruned"] or done["pruned_actions"]:
        err_console.print(
            f"prediction log: {done['replayed']:,} replayed from the journal, {done['pruned']:,} pruned; "
            f"{done['pruned_actions']:,} finished actions pruned from the outbox"
        )


def _loop(proj: Any, stop: threading.Event, once: bool) -> None:
    from loopml.actions import dispatch_once
    from loopml.retrain import tick

    actions = None if once else _actions_thread(proj, stop)
    while not stop.is_set():
        _tend_prediction_log(proj)
        for settings in (proj.settings, *proj.companions):  # companions: the maintenance failure model
            _tick(tick, settings, proj.store)
        if once:
            if proj.settings.actions.endpoints:
                dispatch_once(proj.settings, proj.store.engine)
            return
        stop.wait(proj.settings.retrain.interval_s)
    if actions is not None:
        actions.join(30)


def _tick(tick: Any, settings: Any, store: Any) -> None:
    """One model's policy check (and cycle, when due); a failure is printed, never raised."""
    try:
        rolled, result = tick(settings, store)
        if rolled:
            err_console.print(
                f"{settings.name}: rolled back v{rolled['from']} -> v{rolled['to']} ({rolled['reason']})"
            )
        if result.ran:
            version = result.challenger_version
            err_console.print(f"{settings.name}: cycle {result.status}: challenger v{version}")
    except BusyError as exc:  # another worker holds this model's cycle lease
        err_console.print(f"another worker is running a cycle: {exc}")
    except Exception as exc:  # a failing cycle never stops the worker (nor disturbs serving)
        err_console.print(f"[red]cycle failed[/]: {type(exc).__name__}: {exc}")


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


@handle_errors
def worker(
    project: ProjectOpt = Path("."),
    once: Annotated[bool, typer.Option("--once", help="Check the policy once, then exit.")] = False,
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
    err_console.print(
        f"worker for [bold]{proj.name}[/]: checking every {proj.settings.retrain.interval_s:g} s"
    )
    _loop(proj, stop, once)


@handle_errors
def up(
    project: ProjectOpt = Path("."),
    host: Annotated[str | None, typer.Option(help="API bind address (default from loopml.yaml).")] = None,
    port: Annotated[int | None, typer.Option(help="API port (default from loopml.yaml).")] = None,
) -> None:
    """Run the API (a child process) and the worker (this process) together; Ctrl+C stops both."""
    proj = open_project(project)
    command = [sys.executable, "-m", "loopml", "serve", "--project", str(project)]
    command += [*(["--host", host] if host else []), *(["--port", str(port)] if port else [])]
    api = subprocess.Popen(command)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        _loop(proj, stop, once=False)
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)
