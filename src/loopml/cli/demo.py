"""``loopml demo NAME``: one example system, end to end, for real, in one command."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli._common import JsonOpt, emit, handle_errors

__all__ = ["demo"]

# The shipped demos, for --help only (the registry of examples, loopml.examples, is what runs).
_SHIPPED = "fraud, maintenance, forecast, recommend"


@handle_errors
def demo(
    example: Annotated[
        str, typer.Argument(help=f"Which example to run: {_SHIPPED} (or an installed plugin's).")
    ] = "fraud",
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
    from loopml.project import configure_process, get_example

    found = get_example(example)
    module = found.load_demo()
    options = {k: v for k, v in (("quick", quick or None), ("seed", seed)) if v is not None}
    found.check_options(options)
    configure_process()
    directory = project or Path(tempfile.mkdtemp(prefix=f"loopml-demo-{example}-"))
    summary = module.run(directory, **options)
    emit(summary, as_json, lambda: module.render(summary))
