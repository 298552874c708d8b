"""The ``loopml`` command line (Typer): a thin layer over :mod:`loopml.project`."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli import actions, commands, data, models, predictions
from loopml.cli._common import set_debug, set_log_format
from loopml.cli.demo import demo
from loopml.cli.monitor import feedback, monitor
from loopml.cli.retrain import retrain, up, worker

__all__ = ["app", "main"]

app = typer.Typer(
    name="loopml",
    help="loopml turns a model into a production ML system: ingest -> train -> registry -> serve -> "
    "monitor -> retrain. Start with `loopml demo fraud`, or `loopml init DIR --example fraud`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar="LOOPML_LOG_FORMAT",
            metavar="json|text",
            help="Log lines on stderr: 'json' (one object per line, access log included) for log "
            "collectors, or 'text'. LOOPML_LOG_LEVEL sets the level.",
        ),
    ] = "text",
) -> None:
    ctx.obj = {"debug": debug}
    set_debug(debug)
    set_log_format(log_format)


commands.register(app)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(actions.app, name="actions")
app.add_typer(predictions.app, name="predictions")
app.command("demo")(demo)
app.command("monitor")(monitor)
app.command("feedback")(feedback)
app.command("retrain")(retrain)
app.command("worker")(worker)
app.command("up")(up)


def main() -> None:
    """Console-script entry point: the process's settings (see ``loopml.project.configure_process``),
    then the command."""
    from loopml.project import configure_process

    configure_process()
    app()
