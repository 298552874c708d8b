"""``loopml demo NAME``: one example system, end to end, for real, in one command."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli._common import JsonOpt, emit, handle_errors
from loopml.errors import InputError, did_you_mean

__all__ = ["DEMOS", "demo"]

# name -> module under loopml.cli.demos with run(directory) -> dict and render(summary)
DEMOS = ("fraud", "maintenance", "forecast", "recommend")


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
        bool, typer.Option("--quick", help="Smaller data and models, same steps (for tests; fraud only).")
    ] = False,
) -> None:
    """Build an example system from its shipped data and run its whole loop; print a summary.

    Generates or copies the data, ingests it under a contract, trains and registers a model, serves
    it over real HTTP, scores in batch, and reports. Example: loopml demo fraud --json
    """
    if example not in DEMOS:
        raise InputError(f"unknown demo '{example}'; {did_you_mean(example, DEMOS)}")
    directory = project or Path(tempfile.mkdtemp(prefix=f"loopml-demo-{example}-"))
    module = importlib.import_module(f"loopml.cli.demos.{example}")
    summary = module.run(directory, quick=True) if quick else module.run(directory)
    emit(summary, as_json, lambda: module.render(summary))
