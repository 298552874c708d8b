"""``loopml config``: the project file's own reference (its JSON Schema, for editors and checks)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli._common import console, handle_errors
from loopml.errors import InputError

__all__ = ["app"]

app = typer.Typer(
    help="The project file loopml.yaml itself: its JSON Schema for editors (every key is described in "
    "docs/config.md).",
    no_args_is_help=True,
)


@app.command("schema")
@handle_errors
def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the schema to this file (e.g. loopml.schema.json beside loopml.yaml) instead of "
            "printing it.",
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of loopml.yaml: every key with its type, default and description.

    Editors that use the YAML language server (VS Code's YAML extension, among others) complete and
    check the keys of a file whose first line is `# yaml-language-server: $schema=loopml.schema.json`,
    as `loopml init` writes it. After upgrading loopml, refresh a project's copy with
    `loopml config schema -o loopml.schema.json`.
    """
    from loopml.config import schema as config_schema

    text = config_schema.schema_text()
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"--output {output}: cannot write it ({exc.strerror or exc}).",
            hint="Name a file in an existing, writable folder.",
        ) from None
    console.print(f"Wrote the schema of loopml.yaml to {output}.", highlight=False, markup=False)
