"""The closed sets loopml's records and settings use, as ``StrEnum`` types.

Each member is its own string (``TaskKind.BINARY == "binary"``), so stored rows, ``loopml.yaml`` and
JSON output keep their plain values while the code compares types, not spelled-out strings.

>>> TaskKind("binary") is TaskKind.BINARY
True
>>> sorted(ActionStatus)[:2]
[<ActionStatus.DEAD: 'dead'>, <ActionStatus.DELIVERED: 'delivered'>]
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActionStatus",
    "AlertKind",
    "CycleStatus",
    "EventKind",
    "Origin",
    "TaskKind",
    "TriggerKind",
]


class TaskKind(StrEnum):
    """What a model predicts (``task:`` in loopml.yaml); its behaviour lives in :mod:`loopml.tasks`."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    FORECAST = "forecast"
    RANKING = "ranking"

    @property
    def classifies(self) -> bool:
        """Whether the target's values are classes (binary, multiclass): a label outside the ones
        seen is not a larger value but a class the model never learnt."""
        return self in (TaskKind.BINARY, TaskKind.MULTICLASS)


class EventKind(StrEnum):
    """A recorded retraining event: a policy decision, a cycle, or a rollback by the watch."""

    DECISION = "decision"
    CYCLE = "cycle"
    ROLLBACK = "rollback"


class CycleStatus(StrEnum):
    """A retraining event's status.

    A cycle moves ``running`` -> ``trained`` -> [``shadowing``] -> ``promoted`` | ``rejected``, or
    ends ``failed`` / ``abandoned``; decisions and rollbacks are recorded ``done``. A cycle result that
    ran nothing is ``skipped``, ``waiting`` when a cycle was due but too few rows are newer than
    everything the champion learned from to judge a challenger on, or ``dry_run`` when it only explained.
    """

    RUNNING = "running"
    TRAINED = "trained"
    SHADOWING = "shadowing"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    ABANDONED = "abandoned"
    DONE = "done"
    SKIPPED = "skipped"
    WAITING = "waiting"
    DRY_RUN = "dry_run"


class AlertKind(StrEnum):
    """What an alert is about: monitoring (drift, performance) or delivery (an endpoint down)."""

    DRIFT = "drift"
    CONCEPT_DRIFT = "concept_drift"
    PERFORMANCE = "performance"
    ESTIMATED_PERFORMANCE = "estimated_performance"
    ENDPOINT_DOWN = "endpoint_down"  # an action endpoint has failed for actions.down_alert_after


class TriggerKind(StrEnum):
    """Why the retraining policy wants a cycle."""

    NO_CHAMPION = "no_champion"
    DRIFT = "drift"
    ESTIMATED_FLOOR = "estimated_floor"
    PERFORMANCE_FLOOR = "performance_floor"
    NEW_LABELS = "new_labels"
    SCHEDULE = "schedule"
    AFTER_ALERT = "after_alert"  # a monitoring alert, then enough labels of the traffic after it


class ActionStatus(StrEnum):
    """An action's state in the outbox."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPPRESSED = "suppressed"


class Origin(StrEnum):
    """Who made a logged prediction: the API, a batch job, the Python API, or a shadowing challenger."""

    API = "api"
    BATCH = "batch"
    PYTHON = "python"
    SHADOW = "shadow"
