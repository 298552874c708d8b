"""``loopml predictions``: upkeep of the prediction log (retention and crash-journal replay), and
why a logged prediction scored as it did (``explain``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

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
    help="The prediction log: apply the retention policy, replay what a killed server journalled, "
    "explain a logged prediction.",
    no_args_is_help=True,
)


@app.command("prune")
@handle_errors
def prune(
    project: ProjectOpt = Path("."),
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Override store.retention.predictions for this run, e.g. 90d, 12w, 24h.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete predictions (and their feedback) older than store.retention in loopml.yaml.

    Example: `loopml predictions prune --older-than 90d`. With `labelled: 365d` in the policy,
    predictions that received feedback are kept that long instead. `loopml worker` runs the same
    prune on every tick, so this command is for a one-off clean-up or a cron job.
    """
    proj = open_project(project)
    with err_console.status("pruning the prediction log ..."):
        result = proj.predictions.prune(older_than)
    payload = {
        "deleted_predictions": result.predictions,
        "deleted_feedback": result.feedback,
        "cutoff": result.cutoff,
        "labelled_cutoff": result.labelled_cutoff,
    }
    emit(
        payload,
        as_json,
        lambda: console.print(
            f"Deleted {result.predictions:,} predictions made before {result.cutoff:%Y-%m-%d %H:%M} UTC "
            f"and {result.feedback:,} labels that belonged to them."
        ),
    )


@app.command("replay")
@handle_errors
def replay(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Store the predictions that a killed API process had journalled but not yet written.

    The API, `loopml worker` and `loopml monitor` do this by themselves; ids already stored are
    skipped, so running it again is harmless.
    """
    proj = open_project(project)
    done = proj.predictions.replay_journal()
    count, folder = done.replayed, done.journal
    emit(
        {"replayed": count, "journal": str(folder)},
        as_json,
        lambda: console.print(f"Replayed {count:,} journalled predictions from {escape(str(folder))}."),
    )


@app.command("explain")
@handle_errors
def explain(
    prediction_id: Annotated[
        str | None, typer.Argument(help="A logged prediction's id; the newest prediction when left out.")
    ] = None,
    project: ProjectOpt = Path("."),
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Features named before the rest.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Why a logged prediction scored as it did: its top features' contributions to the raw score.

    The logged inputs are scored again by the version that made the prediction; base value plus the
    contributions is the raw score (log-odds for a classifier, the value for a regression).
    Example: `loopml predictions explain 0190f3c2-... --k 8`.
    """
    from rich.table import Table

    logged = open_project(project).predictions.explain(prediction_id, k)
    explanation = logged.explanation

    def render() -> None:
        table = Table(title=f"prediction {escape(logged.prediction_id)} (version {logged.model_version})")
        for column in ("feature", "input", "contribution"):
            table.add_column(column)
        table.add_row("base value", "", fmt(explanation.base_value))
        for c in explanation.contributions:
            shown = f"{c.features} features" if c.features > 1 else logged.inputs.get(c.feature)
            table.add_row(fmt(c.feature), fmt(shown), fmt(c.contribution))
        table.add_row("raw score", "", fmt(explanation.raw_score))
        console.print(table)

    emit(logged.to_dict(), as_json, render)
