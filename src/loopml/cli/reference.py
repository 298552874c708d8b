"""The reference of every ``loopml`` command and option as Markdown (``docs/cli.md``), made from the
Typer app itself, so that it says what ``--help`` says. Regenerate it after changing a command::

    python -m loopml.cli.reference docs/cli.md

``tests/test_docs.py`` fails while the page differs from what this module makes. Nothing here runs
when the CLI does: the module is imported only to write the page.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import typer
import typer.main

from loopml.config.reference import markdown_text, write_page

__all__ = ["markdown"]

_REGENERATE = "python -m loopml.cli.reference docs/cli.md"
_LABELLED_COMMAND = re.compile(r"^([^:]*:\s+)(loopml\s.*)$")
_COMMAND_LINE = re.compile(r"^loopml\s.*\s--?[a-z]")
_TYPES = {"str": "text", "path": "path", "int": "integer", "int range": "integer", "float": "number"}


def _text(text: str) -> str:
    """Help prose as Markdown, with the example command lines in it as code."""
    return markdown_text("\n".join(_commands_as_code(line) for line in text.splitlines()))


def _commands_as_code(line: str) -> str:
    """``Example: loopml init x --example fraud`` -> ``Example: `loopml init x --example fraud```: a
    command after a label, or a line that is one command with options; prose stays prose."""
    if "`" in line:
        return line
    labelled = _LABELLED_COMMAND.match(line)
    if labelled:
        return f"{labelled[1]}`{labelled[2]}`"
    return f"`{line}`" if _COMMAND_LINE.match(line) else line


def _cell(text: str) -> str:
    return markdown_text(text, cell=True)


def _context(command: Any, name: str, parent: Any = None) -> Any:
    """A click-style context for ``command`` (Typer may vendor its own click, so build it from the
    command's module rather than importing click)."""
    context_class = sys.modules[type(command).__mro__[1].__module__].Context  # typer._click or click
    return context_class(command, info_name=name, parent=parent)


def _commands(command: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    """Every visible command under ``command``, in the order the app registers them, depth first."""
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        sub_ctx = _context(sub, name, ctx)
        yield sub, sub_ctx
        if hasattr(sub, "list_commands"):
            yield from _commands(sub, sub_ctx)


def _is_option(param: Any) -> bool:
    return bool(getattr(param, "opts", None)) and str(param.opts[0]).startswith("-")


def _value(param: Any, ctx: Any) -> str:
    """What an option takes: nothing for a flag, else its metavar or its type."""
    if getattr(param, "is_flag", False):
        return "flag"
    if param.metavar:
        return f"`{param.metavar}`"
    shown = param.display_type(ctx) if hasattr(param, "display_type") else param.type.name
    kind = _TYPES.get(str(shown).strip("<>").lower(), str(shown).strip("<>").lower())
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    bounds = [f"{sign} {v}" for sign, v in (("≥", low), ("≤", high)) if v is not None]
    return ", ".join([kind, *bounds])


def _default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or getattr(param, "is_flag", False) or callable(default):
        return ""
    return f"`{default}`"


def _usage(path: str, params: Sequence[Any]) -> str:
    args = [p for p in params if not _is_option(p)]
    pieces = [path, "[OPTIONS]"] if any(_is_option(p) for p in params) else [path]
    pieces += [p.name.upper() if p.required else f"[{p.name.upper()}]" for p in args]
    return " ".join(pieces)


def _params(params: Sequence[Any], ctx: Any) -> list[str]:
    shown = [p for p in params if not getattr(p, "hidden", False) and p.name != "help"]
    if not shown:
        return []
    rows = ["| option | takes | default | meaning |", "| --- | --- | --- | --- |"]
    for param in shown:
        if _is_option(param):
            names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        else:
            names = f"`{param.name.upper()}` (argument)"
        meaning = param.help or ""
        if getattr(param, "envvar", None):
            meaning += f" Environment variable: `{param.envvar}`."
        rows.append(f"| {names} | {_value(param, ctx)} | {_default(param)} | {_cell(meaning)} |")
    return [*rows, ""]


def _section(command: Any, ctx: Any, level: int) -> list[str]:
    path = ctx.command_path
    is_group = hasattr(command, "list_commands")
    out = [f"{'#' * level} {path}", ""]
    help_text = (command.help or "").strip()
    if help_text:
        out += [_text(help_text), ""]
    usage = f"{path} COMMAND [ARGS]..." if is_group else _usage(path, command.params)
    out += ["```text", usage, "```", ""]
    if is_group:
        names = [n for n in command.list_commands(ctx) if not command.get_command(ctx, n).hidden]
        out += ["Commands: " + ", ".join(f"[`{n}`](#{_anchor(f'{path} {n}')})" for n in names) + ".", ""]
    return out + _params(command.params, ctx)


def _anchor(heading: str) -> str:
    """The id MkDocs gives a heading: lower case, word characters, hyphens for spaces."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower())


def markdown(app: typer.Typer | None = None) -> str:
    """The whole reference page (``docs/cli.md``) of ``app`` (default: the ``loopml`` command)."""
    if app is None:
        from loopml.cli import app as loopml_app

        app = loopml_app
    root = typer.main.get_command(app)
    root_ctx = _context(root, "loopml")
    out = [
        "# Command-line reference",
        "",
        f"<!-- Generated from the Typer app (src/loopml/cli/) by `{_REGENERATE}`. "
        "Do not edit by hand: change the command's help and regenerate. -->",
        "",
        "Every command that works on a project takes `--project DIR` (`-p`, default: the current "
        "folder) and `--json`, which prints one JSON object on stdout instead of text. A user mistake "
        "is a one-line message and a non-zero exit code; `loopml --debug COMMAND` shows the traceback. "
        "`loopml COMMAND --help` prints the same text as this page.",
        "",
        "## loopml",
        "",
        _text((root.help or "").strip()),
        "",
        "```text",
        "loopml [OPTIONS] COMMAND [ARGS]...",
        "```",
        "",
        *_params(root.params, root_ctx),
    ]
    for command, ctx in _commands(root, root_ctx):
        level = 2 + ctx.command_path.count(" ") - 1
        out += _section(command, ctx, min(level, 4))
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loopml.cli.reference [FILE]``: write the page to FILE, or print it."""
    return write_page(markdown(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
