"""Tasks: what a model predicts and how it is judged (metrics, splits, candidates, baselines)."""

from __future__ import annotations

from loopml.enums import TaskKind
from loopml.errors import ConfigError, did_you_mean
from loopml.tasks import binary, forecast, multiclass, ranking, regression
from loopml.tasks.base import Task, crossed_group, group_in_holdout, group_sides, time_split

__all__ = [
    "TASKS",
    "Task",
    "binary",
    "crossed_group",
    "forecast",
    "get_task",
    "group_in_holdout",
    "group_sides",
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
