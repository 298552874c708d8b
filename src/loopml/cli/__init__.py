"""The ``loopml`` command line (Typer): a thin layer over :mod:`loopml.project`."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli import actions, commands, config_cmd, data, models, predictions
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


def _flags_take_no_value() -> None:
    """Show a boolean flag as ``--json``, not ``--json <bool>``, in every --help.

    Typer (0.29) writes each option's type beside it, a flag's too (``--json <bool>``,
    ``--help <bool>``), as if it took a value; a flag takes none, so its type column stays empty (as
    in click's plain help). Typer has no per-app hook for this, hence the wrapper on its option class.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "__loopml_flags__", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich.__loopml_flags__ = True  # type: ignore[attr-defined]
    setattr(TyperOption, "display_type_rich", display_type_rich)  # noqa: B010


_flags_take_no_value()


def _version(value: bool) -> None:
    if value:
        from loopml import __version__

        typer.echo(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print loopml's version and exit."),
    ] = False,
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
app.add_typer(config_cmd.app, name="config")
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
