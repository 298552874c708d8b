"""Shared CLI plumbing: common options, output (human or --json), and one-line errors."""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from loopml.errors import LoopMLError

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = [
    "JsonOpt",
    "ProjectOpt",
    "console",
    "emit",
    "err_console",
    "fmt",
    "handle_errors",
    "open_project",
    "set_debug",
    "set_log_format",
]

# soft_wrap: a long path or command is printed whole on one line (the terminal folds it for the
# eye), so it can be copied, and piped or captured output never breaks a path across lines.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="Project directory (where loopml.yaml is).", show_default=True)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of text.")]

F = TypeVar("F", bound=Callable[..., Any])


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinity are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def emit(payload: dict[str, Any], as_json: bool, render: Callable[[], None]) -> None:
    """Print ``payload`` as one JSON object, or call ``render`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(_finite(payload), default=_default, allow_nan=False) + "\n")
    else:
        render()


# Set by the root callback on every invocation. (Recent Typer releases vendor their own click,
# so `click.get_current_context()` does not see Typer's context, and click may not even be installed.)
_options = {"debug": False}


def set_debug(debug: bool) -> None:
    """Record the root ``--debug`` flag for :func:`handle_errors`."""
    _options["debug"] = debug


def set_log_format(log_format: str) -> None:
    """Configure logging for the root ``--log-format`` (a bad value is a one-line error, exit 2)."""
    from loopml.project import LOG_FORMATS, configure_logging

    if log_format not in LOG_FORMATS:
        err_console.print(
            f"[bold red]error[/]: --log-format '{escape(log_format)}' is not one of "
            f"{', '.join(LOG_FORMATS)}.",
            highlight=False,
        )
        raise typer.Exit(2)
    configure_logging(log_format)


def fmt(value: Any) -> str:
    """A table cell: floats to 4 decimals, None empty, text with its brackets shown (not Rich markup)."""
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else escape(str(value))


def _debug() -> bool:
    return _options["debug"]


def handle_errors(fn: F) -> F:
    """Turn a :class:`LoopMLError` into a one-line message and its exit code (a traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LoopMLError as exc:
            if _debug():
                raise
            if kwargs.get("as_json"):
                sys.stdout.write(json.dumps({"error": exc.to_dict()}, default=_default) + "\n")
            err_console.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def open_project(path: Path) -> Project:
    """Open a project (imported here so that ``loopml --help`` stays fast)."""
    from loopml.project import Project

    return Project.open(path)
