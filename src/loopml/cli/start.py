"""Starting a project: ``loopml init`` (an example, the user's own file, or a blank template) and
``loopml check`` (every column the project file names, against the data's columns)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, err_console, handle_errors, open_project
from loopml.errors import ConfigError
from loopml.project import example_names

if TYPE_CHECKING:
    from loopml.project import ConfigCheck, Initialized

__all__ = ["check", "init"]

# The registry of examples, read once (entry points, no example imported): `init --help` lists them.
_EXAMPLES = ", ".join(example_names())


def _refuse_mixed(example: str | None, from_file: Path | None, given: dict[str, str | None]) -> None:
    """--example and --from exclude each other; --target, --id, --time and --task need --from."""
    if example is not None and from_file is not None:
        raise ConfigError("loopml init: choose one of --example NAME and --from FILE, not both.")
    extra = [option for option, value in given.items() if value is not None]
    if extra and from_file is None:
        raise ConfigError(f"loopml init: {extra[0]} goes with --from FILE (your own data file).")
    if from_file is not None and given["--target"] is None:
        raise ConfigError("loopml init: --from needs --target COLUMN, the column the model predicts.")


def _started_text(started: Initialized, directory: Path) -> None:
    d = started.draft
    console.print(
        f"Created [bold]{escape(str(started.project.project_file))}[/] for {escape(d.path)} "
        f"({d.rows:,} rows, {len(d.columns)} columns)."
    )
    console.print(f"Task: [bold]{d.task.value}[/], because {escape(d.task_reason)}.")
    console.print(f"Monitoring: window {d.window}, min_rows {d.min_rows}: {escape(d.window_reason)}.")
    if d.missing_targets:
        console.print(f"{d.missing_targets:,} rows have no target: ingest quarantines them.")
    where = escape(str(directory))
    console.print(f"Next: loopml ingest -p {where} && loopml train -p {where} && loopml serve -p {where}")


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Directory for the new project (created if missing).")],
    example: Annotated[
        str | None,
        typer.Option(
            "--example",
            metavar="NAME",
            help=f"Start from an example project and its data: {_EXAMPLES} (see `loopml demo --help`).",
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from", metavar="FILE", help="Start from your own CSV or Parquet file (or a folder of them)."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="COLUMN", help="With --from: the column to predict.")
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id", metavar="COLUMN", help="With --from: a column unique per row (never a feature)."
        ),
    ] = None,
    event_time: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="COLUMN",
            help="With --from: the time of each row (the holdout is the newest rows; not a feature).",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            metavar="binary|multiclass|regression",
            help="With --from: the task (default: inferred from the target, and said).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project: for your own data file, from an example, or a blank loopml.yaml to fill in.

    --from FILE --target COLUMN: the task is inferred from the target (and said), monitoring fits the data.

    Every key of the loopml.yaml written is explained in a comment; `loopml check` then checks it.

    Your file: loopml init churn --from customers.csv --target churned --id customer_id

    An example and its data: loopml init my-fraud --example fraud
    """
    from loopml.project import Project

    given = {"--target": target, "--id": id_column, "--time": event_time, "--task": task}
    _refuse_mixed(example, from_file, given)
    if from_file is not None and target is not None:
        with err_console.status(f"reading {escape(str(from_file))} ..."):
            started = Project.init_from_file(
                directory, from_file, target=target, id_column=id_column, event_time=event_time, task=task
            )
        emit(started.to_dict(), as_json, lambda: _started_text(started, directory))
    elif example is not None:
        with err_console.status(f"writing example '{escape(example)}' into {escape(str(directory))} ..."):
            path = Project.init(directory, example=example).project_file
        emit(
            {"project_file": str(path), "example": example},
            as_json,
            lambda: console.print(
                f"Created [bold]{escape(str(path))}[/]. Next: loopml ingest -p {directory}"
            ),
        )
    else:
        blank = Project.write_template(directory)
        emit(
            {"project_file": str(blank), "template": True},
            as_json,
            lambda: console.print(
                f"Created the blank template [bold]{escape(str(blank))}[/]: fill in source and target "
                f"(each key is explained in it), then `loopml check -p {escape(str(directory))}`. "
                "For your own file, `loopml init DIR --from FILE --target COLUMN` fills it in."
            ),
        )


def _check_text(report: ConfigCheck) -> None:
    console.print(
        f"loopml.yaml is consistent with {escape(report.where)}: {len(report.checked)} column "
        f"reference(s) checked against its {len(report.columns)} columns."
    )
    for ref in report.checked:
        console.print(f"  {escape(ref.key)}: {escape(ref.column)}", highlight=False)


@handle_errors
def check(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Check loopml.yaml against the data: every column it names must be a column of the source.

    Checked: target, id, event time, groups, segments, features, windows, task sections, rules.

    The source's columns are read cheaply: a CSV header, a Parquet schema, an SQL result's columns.

    A miss is one line naming the key, the value and the closest real column (exit code 2).

    `loopml ingest` and `loopml train` run the same check first.
    """
    report = open_project(project).check()
    emit(report.to_dict(), as_json, lambda: _check_text(report))
