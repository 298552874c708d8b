"""``loopml init``: a project for the user's own data file, or a commented blank template.

``init --from FILE --target COL`` reads the file's columns (its header or schema) and then only the
target and event-time columns, and writes a ``loopml.yaml`` with:

- the source: ``kind`` from the file's suffix, ``path`` relative to the project when the file is
  inside it, else absolute; a CSV whose header is split by ``;``, a tab or ``|`` gets ``options.sep``;
- the task inferred from the target (:func:`infer_task`), said in the output and in a comment;
- monitoring windows for the data's size and time span (:func:`choose_window`), the reasoning in a
  comment;
- rows without a target sent to quarantine (``cleaning.missing``), as training refuses them.

A misspelled ``--target``, ``--id`` or ``--time`` is a one-line :class:`~loopml.errors.ConfigError`
(exit code 2) with the closest real column; nothing is written then. The data contract is not
written here: the first ``loopml ingest`` infers it from every row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.config import PROJECT_FILE, with_schema_header, write_schema
from loopml.enums import TaskKind
from loopml.errors import ConfigError, DataError, InputError, did_you_mean
from loopml.project.check import ConfigCheck, suggest_column
from loopml.project.templates import BLANK_TEMPLATE, render_project
from loopml.sources import open_source, read_all, source_columns
from loopml.tasks import get_task

if TYPE_CHECKING:
    from loopml.project.core import Project

__all__ = [
    "INIT_TASKS",
    "Initialized",
    "ProjectDraft",
    "choose_window",
    "draft_project",
    "infer_task",
    "project_name",
    "refuse_existing",
    "write_blank",
    "write_draft",
]

INIT_TASKS = (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION)
MULTICLASS_MAX_INTEGERS = 20  # whole numbers with at most this many distinct values are classes
MULTICLASS_MAX_TEXT = 50  # text targets with more distinct values are not class labels
WINDOW_ROWS = 500  # a monitoring window should hold at least this many predictions (2.5 x min_rows)
_WINDOWS = (("1h", 1 / 24), ("1d", 1.0), ("7d", 7.0), ("30d", 30.0))
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class ProjectDraft:
    """What ``init --from`` found in the file and will write."""

    name: str
    kind: str
    path: str
    options: dict[str, str]
    columns: tuple[str, ...]
    rows: int
    target: str
    task: TaskKind
    task_reason: str
    id_column: str | None
    event_time: str | None
    window: str
    min_rows: int
    window_reason: str
    missing_targets: int

    def yaml(self, origin: str) -> str:
        """The project file's text (``origin``: the file as the user named it)."""
        facts: dict[str, Any] = {
            **self.__dict__,
            "task": self.task.value,
            "origin": origin,
            "stratified": get_task(self.task).stratify,
        }
        return render_project(facts)


@dataclass(frozen=True)
class Initialized:
    """A project written for one data file: the project (opened and checked), what was inferred,
    and what ``loopml check`` verified."""

    project: Project
    draft: ProjectDraft
    check: ConfigCheck

    def to_dict(self) -> dict[str, Any]:
        d = self.draft
        return {
            "project_file": str(self.project.project_file),
            "name": d.name,
            "source": {"kind": d.kind, "path": d.path, **({"options": d.options} if d.options else {})},
            "rows": d.rows,
            "columns": list(d.columns),
            "target": d.target,
            "task": d.task.value,
            "task_reason": d.task_reason,
            "id_column": d.id_column,
            "event_time": d.event_time,
            "monitor": {"window": d.window, "min_rows": d.min_rows, "reason": d.window_reason},
            "missing_targets": d.missing_targets,
        }


def project_name(directory: Path) -> str:
    """A registry name from a folder's name (``my project`` -> ``my-project``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-._")
    return name or "project"


def write_blank(directory: Path) -> Path:
    """Write the commented blank template into ``directory`` (created if missing)."""
    target = _new_project_file(directory)
    _write(target, BLANK_TEMPLATE.format(name=project_name(directory)))
    return target


def refuse_existing(directory: Path) -> Path:
    """``directory``'s project file, which must not exist yet."""
    target = directory / PROJECT_FILE
    if target.exists():
        raise InputError(f"{target} already exists; choose an empty directory or remove it.")
    return target


def _new_project_file(directory: Path) -> Path:
    target = refuse_existing(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return target


def _kind(file: Path) -> str:
    if file.is_dir():
        return "parquet" if any(file.rglob("*.parquet")) else "csv"
    kind = _SUFFIXES.get(file.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"loopml init: --from '{file}' is not a .csv or .parquet file (nor a folder of them); "
            "convert it to CSV or Parquet."
        )
    return kind


def _separator(file: Path) -> dict[str, str]:
    """``{sep: ...}`` when the header line is split by ``;``, a tab or ``|`` rather than commas."""
    if file.is_dir():
        return {}
    with file.open(encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return {"sep": best} if best != "," and counts[best] > counts[","] else {}


def _check_option(option: str, value: str | None, columns: list[str], file: Path) -> None:
    if value is not None and value not in columns:
        raise ConfigError(
            f"loopml init: {option} '{value}' is not a column of {file.name}; "
            + suggest_column(value, columns)
        )


def infer_task(target: pd.Series) -> tuple[TaskKind, str]:
    """The task a target column calls for, and why (said to the user).

    Binary: two distinct values, 0/1 or true/false. Multiclass: text with up to
    :data:`MULTICLASS_MAX_TEXT` distinct values, or whole numbers with up to
    :data:`MULTICLASS_MAX_INTEGERS`. Regression: other numbers.

    Examples
    --------
    >>> infer_task(pd.Series([0, 1, 1, 0], name="churned"))[0].value
    'binary'
    >>> infer_task(pd.Series(["a", "b", "c"], name="kind"))
    (<TaskKind.MULTICLASS: 'multiclass'>, "'kind' has 3 distinct text values: 'a', 'b', 'c'")
    >>> infer_task(pd.Series([0.5, 1.25, 3.0, 7.5], name="price"))[1]
    "'price' has 4 distinct numbers, from 0.5 to 7.5"
    """
    name, values = target.name, target.dropna()
    distinct = sorted(values.unique().tolist(), key=str)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if len(distinct) < 2:
        raise ConfigError(
            f"loopml init: --target '{name}' has {len(distinct)} distinct value(s); "
            "a target needs two or more."
        )
    shown = ", ".join(repr(v) for v in distinct[:5]) + (", ..." if len(distinct) > 5 else "")
    if len(distinct) == 2:
        if set(distinct) <= {0, 1}:
            share = float((values == 1).mean())
            pair = " and ".join(repr(v) for v in distinct)
            return (
                TaskKind.BINARY,
                f"'{name}' has two distinct values, {pair} ({share:.1%} of the rows are 1)",
            )
        raise ConfigError(
            f"loopml init: --target '{name}' has two values, {shown}: a binary target holds 0/1 or "
            "true/false; write it as 0/1 in the file (1: the outcome to predict), or pass --task multiclass."
        )
    if not numeric:
        if len(distinct) <= MULTICLASS_MAX_TEXT:
            return TaskKind.MULTICLASS, f"'{name}' has {len(distinct)} distinct text values: {shown}"
        raise ConfigError(
            f"loopml init: --target '{name}' has {len(distinct):,} distinct text values, too many classes; "
            "choose another target column."
        )
    whole = bool((values % 1 == 0).all())
    if whole and len(distinct) <= MULTICLASS_MAX_INTEGERS:
        reason = f"'{name}' has {len(distinct)} distinct whole numbers: {shown}"
        return TaskKind.MULTICLASS, reason + " (pass --task regression if they are amounts)"
    low, high = values.min(), values.max()
    return TaskKind.REGRESSION, f"'{name}' has {len(distinct):,} distinct numbers, from {low:g} to {high:g}"


def _given_task(task: str, target: pd.Series) -> tuple[TaskKind, str]:
    """The task given with ``--task``, its labels checked by the task itself (0/1 for binary, ...)."""
    names = [t.value for t in INIT_TASKS]
    if task not in names:
        raise ConfigError(
            f"loopml init: --task '{task}' is not one of {', '.join(names)}; {did_you_mean(task, names)}"
        )
    try:
        get_task(task).labels(target.dropna())
    except DataError as exc:
        raise ConfigError(f"loopml init: --task {task} does not fit the target: {exc}") from None
    return TaskKind(task), f"you chose --task {task}"


def _span(times: pd.Series, column: str) -> pd.Timedelta | None:
    """The time span of an event-time column (a one-line error if it does not hold times)."""
    values = times.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    parsed = pd.to_datetime(values, errors="coerce", utc=True) if not numeric else values
    if numeric or (len(values) and parsed.notna().mean() < 0.9):
        raise ConfigError(
            f"loopml init: --time '{column}' does not hold dates or times (e.g. 2024-01-31 or "
            "2024-01-31T12:00:00); choose another column, or leave --time out."
        )
    span = parsed.max() - parsed.min() if parsed.notna().any() else None
    return span if span is not None and span > pd.Timedelta(0) else None


def choose_window(rows: int, span: pd.Timedelta | None) -> tuple[str, int, str]:
    """``monitor.window`` and ``monitor.min_rows`` for ``rows`` spread over ``span``, and why.

    The window is the shortest of 1h, 1d, 7d, 30d that holds :data:`WINDOW_ROWS` predictions or more
    if traffic arrives at the data's rate; ``min_rows`` (fewer predictions: no drift verdict) is a
    fifth of what it holds, between 30 and 200. Without a time span: 1d, and min_rows a twentieth of
    the rows, between 30 and 200.

    Examples
    --------
    >>> choose_window(10_000, pd.Timedelta(days=92))[:2]
    ('7d', 152)
    >>> choose_window(569, None)[:2]
    ('1d', 30)
    """
    if span is None:
        min_rows = min(200, max(30, rows // 20))
        return (
            "1d",
            min_rows,
            (
                f"no event time, so the default window of 1d; min_rows {min_rows} (a twentieth of the "
                f"{rows:,} rows, between 30 and 200): set window so that it holds min_rows predictions"
            ),
        )
    days = span / pd.Timedelta(days=1)
    per_day = rows / days
    window, length = next(((w, d) for w, d in _WINDOWS if per_day * d >= WINDOW_ROWS), _WINDOWS[-1])
    expected = per_day * length
    min_rows = min(200, max(30, int(expected // 5)))
    return (
        window,
        min_rows,
        (
            f"{rows:,} rows over {days:,.1f} days is about {per_day:,.0f} a day, so a {window} window "
            f"holds about {expected:,.0f} predictions at that rate (the shortest of 1h, 1d, 7d, 30d to "
            f"reach {WINDOW_ROWS:,}); min_rows {min_rows} is a fifth of that, between 30 and 200"
        ),
    )


def _source_path(file: Path, directory: Path) -> str:
    """The file relative to the project when it is inside it, else absolute."""
    resolved, root = file.resolve(), directory.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)


def draft_project(
    directory: Path,
    file: Path,
    *,
    target: str,
    id_column: str | None = None,
    event_time: str | None = None,
    task: str | None = None,
) -> ProjectDraft:
    """Read what the project file needs from ``file`` (its columns, the target and the event time)."""
    if not file.exists():
        raise ConfigError(f"loopml init: --from '{file}' does not exist.")
    kind = _kind(file)
    options = _separator(file) if kind == "csv" else {}
    columns = source_columns(open_source(kind, str(file), options))
    for option, value in (("--target", target), ("--id", id_column), ("--time", event_time)):
        _check_option(option, value, columns, file)
    used = [c for c in dict.fromkeys([target, event_time]) if c is not None]
    reader = {**options, "usecols": used} if kind == "csv" else {"columns": used}
    frame = read_all(open_source(kind, str(file), reader))
    task_kind, reason = _given_task(task, frame[target]) if task else infer_task(frame[target])
    span = _span(frame[event_time], event_time) if event_time is not None else None
    window, min_rows, why = choose_window(len(frame), span)
    return ProjectDraft(
        name=project_name(directory),
        kind=kind,
        path=_source_path(file, directory),
        options=options,
        columns=tuple(columns),
        rows=len(frame),
        target=target,
        task=task_kind,
        task_reason=reason,
        id_column=id_column,
        event_time=event_time,
        window=window,
        min_rows=min_rows,
        window_reason=why,
        missing_targets=int(frame[target].isna().sum()),
    )


def write_draft(directory: Path, draft: ProjectDraft, origin: str) -> Path:
    """Write the draft's project file into ``directory`` (created if missing)."""
    target = _new_project_file(directory)
    _write(target, draft.yaml(origin))
    return target


def _write(target: Path, text: str) -> None:
    """The project file, its first line pointing editors at the JSON Schema written beside it."""
    target.write_text(with_schema_header(text), encoding="utf-8")
    write_schema(target.parent)
