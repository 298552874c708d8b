"""Tasks: what a model predicts and how it is judged (metrics, splits, candidates, baselines)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loopml.enums import TaskKind
from loopml.errors import ConfigError, did_you_mean
from loopml.tasks import binary, forecast, multiclass, ranking, regression
from loopml.tasks.base import Task, crossed_group, group_in_holdout, group_sides, time_split
from loopml.tasks.labels import LabelSpec

__all__ = [
    "TASKS",
    "LabelSpec",
    "Task",
    "binary",
    "crossed_group",
    "forecast",
    "get_task",
    "group_in_holdout",
    "group_sides",
    "label_check",
    "multiclass",
    "ranking",
    "regression",
    "time_split",
]

TASKS: dict[TaskKind, Task] = {
    t.name: t for t in (binary.TASK, multiclass.TASK, regression.TASK, forecast.TASK, ranking.TASK)
}


def get_task(name: str | TaskKind) -> Task:
    """The task called ``name`` (a :class:`~loopml.enums.TaskKind` or its value).

    >>> get_task("binary").primary
    'average_precision'
    """
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'; {did_you_mean(str(name), [str(k) for k in TASKS])}")
    return TASKS[TaskKind(name)]


def label_check(signature: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The check of a label for the version with ``signature``: the label to store, or a
    :class:`ValueError` saying what is wrong (see :mod:`loopml.tasks.labels`).

    >>> check = label_check({"task": "binary"})
    >>> check(True)
    1
    """
    task, spec = get_task(signature.get("task", TaskKind.BINARY)), LabelSpec.of(signature)
    return lambda label: task.check_label(label, spec)
