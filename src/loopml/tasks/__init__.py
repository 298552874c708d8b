"""Tasks: what a model predicts and how it is judged (metrics, splits, candidates, baselines)."""

from __future__ import annotations

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

TASKS: dict[str, Task] = {
    t.name: t for t in (binary.TASK, multiclass.TASK, regression.TASK, forecast.TASK, ranking.TASK)
}


def get_task(name: str) -> Task:
    """The task called ``name``."""
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'; {did_you_mean(name, TASKS)}")
    return TASKS[name]
