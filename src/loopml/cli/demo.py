"""``loopml demo NAME``: one example system, end to end, for real, in one command."""

from __future__ import annotations

import importlib
import inspect
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli._common import JsonOpt, emit, handle_errors
from loopml.errors import InputError, did_you_mean

__all__ = ["DEMOS", "demo"]

# name -> module under loopml.cli.demos with run(directory) -> dict and render(summary)
DEMOS = ("fraud", "maintenance", "forecast", "recommend")
# Why a demo's run() takes no such option (said when one is given anyway).
_WHY_NOT = {
    "quick": "it already runs at full size in about a minute. Drop --quick.",
    "seed": "its data is real, shipped with loopml, not simulated. Drop --seed.",
}


@handle_errors
def demo(
    example: Annotated[str, typer.Argument(help=f"Which example to run: {', '.join(DEMOS)}.")] = "fraud",
    project: Annotated[
        Path | None,
        typer.Option(
            "--project", "-p", help="Empty directory to build the demo in (default: a new temp dir)."
        ),
    ] = None,
    as_json: JsonOpt = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller data and models, same steps (for tests; not forecast).")
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            help="The fraud simulator's seed (default 42): other cards, terminals and frauds, the same "
            "steps and regime change (fraud only; the other demos run on shipped real data).",
        ),
    ] = None,
) -> None:
    """Build an example system from its shipped data and run its whole loop; print a summary.

    Generates or copies the data, ingests it under a contract, trains and registers a model, serves
    it over real HTTP, scores in batch, and reports. Example: loopml demo fraud --json
    """
    if example not in DEMOS:
        raise InputError(f"unknown demo '{example}'; {did_you_mean(example, DEMOS)}")
    module = importlib.import_module(f"loopml.cli.demos.{example}")
    options = {k: v for k, v in (("quick", quick or None), ("seed", seed)) if v is not None}
    for option in options:
        if option not in inspect.signature(module.run).parameters:
            raise InputError(f"--{option} does not apply to the {example} demo: {_WHY_NOT[option]}")
    directory = project or Path(tempfile.mkdtemp(prefix=f"loopml-demo-{example}-"))
    summary = module.run(directory, **options)
    emit(summary, as_json, lambda: module.render(summary))
