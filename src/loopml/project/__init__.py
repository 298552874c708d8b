"""The application layer: :class:`Project` and the facades it hands out, the one door to loopml.

Open a project, then ingest, train, predict, monitor, retrain; the CLI, the server's start-up, the
worker and every example's demo use nothing else, so notebooks and orchestrators (Airflow,
Prefect, Dagster, cron) call exactly the same steps.

Examples
--------
>>> import tempfile
>>> from loopml import Project
>>> project = Project.init(tempfile.mkdtemp(), example="fraud", days=20, n_customers=50, n_terminals=100)
>>> ingested = project.ingest()
>>> ingested.accepted == ingested.dataset.rows
True
>>> sorted(n for n in ("data", "models", "predictions", "monitor", "actions", "retrain", "worker")
...        if hasattr(project, n))
['actions', 'data', 'models', 'monitor', 'predictions', 'retrain', 'worker']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml._logging import LOG_FORMATS, configure_logging
    from loopml._process import configure_process
    from loopml.enums import ActionStatus, AlertKind, CycleStatus, EventKind, Origin, TaskKind, TriggerKind
    from loopml.project.actions import ActionRecord, Actions, ActionSummary, ReplayResult
    from loopml.project.check import ColumnRef, ConfigCheck
    from loopml.project.compare import VersionComparison, VersionSide
    from loopml.project.core import Project
    from loopml.project.data import Data, DatasetDetails, DatasetDiff, Quarantine, SchemaAccepted, Snapshot
    from loopml.project.examples import Demo, Example, example_names, get_example
    from loopml.project.explain import LoggedExplanation
    from loopml.project.forecasts import ForecastLabels
    from loopml.project.models import FittedModel, ModelDiff, Models
    from loopml.project.monitor import DashboardData, Monitor
    from loopml.project.predictions import FeedbackResult, JournalReplay, PointInTime, Prediction, Predictions
    from loopml.project.retrain import Retrain, Rollback, Tick
    from loopml.project.scaffold import Initialized, ProjectDraft
    from loopml.project.worker import Worker, WorkerEvent
    from loopml.scoring import Contribution, Explanation, LoadedModel
    from loopml.train import TrainOutcome

# Each public name -> the module that defines it, imported on first use: ``loopml --help`` and the
# CLI's option parsing stay fast, and a command loads only what it runs.
_EXPORTS: dict[str, str] = {
    "ActionRecord": "loopml.project.actions",
    "ActionStatus": "loopml.enums",
    "ActionSummary": "loopml.project.actions",
    "Actions": "loopml.project.actions",
    "AlertKind": "loopml.enums",
    "ColumnRef": "loopml.project.check",
    "Contribution": "loopml.scoring",
    "ConfigCheck": "loopml.project.check",
    "CycleStatus": "loopml.enums",
    "DashboardData": "loopml.project.monitor",
    "Data": "loopml.project.data",
    "DatasetDetails": "loopml.project.data",
    "DatasetDiff": "loopml.project.data",
    "Demo": "loopml.project.examples",
    "EventKind": "loopml.enums",
    "Example": "loopml.project.examples",
    "Explanation": "loopml.scoring",
    "FeedbackResult": "loopml.project.predictions",
    "FittedModel": "loopml.project.models",
    "Initialized": "loopml.project.scaffold",
    "ForecastLabels": "loopml.project.forecasts",
    "JournalReplay": "loopml.project.predictions",
    "LOG_FORMATS": "loopml._logging",
    "LoggedExplanation": "loopml.project.explain",
    "LoadedModel": "loopml.scoring",
    "ModelDiff": "loopml.project.models",
    "Models": "loopml.project.models",
    "Monitor": "loopml.project.monitor",
    "Origin": "loopml.enums",
    "PointInTime": "loopml.project.predictions",
    "Prediction": "loopml.project.predictions",
    "Predictions": "loopml.project.predictions",
    "Project": "loopml.project.core",
    "ProjectDraft": "loopml.project.scaffold",
    "Quarantine": "loopml.project.data",
    "ReplayResult": "loopml.project.actions",
    "Retrain": "loopml.project.retrain",
    "Rollback": "loopml.project.retrain",
    "SchemaAccepted": "loopml.project.data",
    "Snapshot": "loopml.project.data",
    "TaskKind": "loopml.enums",
    "Tick": "loopml.project.retrain",
    "TrainOutcome": "loopml.train",
    "TriggerKind": "loopml.enums",
    "VersionComparison": "loopml.project.compare",
    "VersionSide": "loopml.project.compare",
    "Worker": "loopml.project.worker",
    "WorkerEvent": "loopml.project.worker",
    "configure_logging": "loopml._logging",
    "configure_process": "loopml._process",
    "example_names": "loopml.project.examples",
    "get_example": "loopml.project.examples",
}

__all__ = [
    "LOG_FORMATS",
    "ActionRecord",
    "ActionStatus",
    "ActionSummary",
    "Actions",
    "AlertKind",
    "ColumnRef",
    "ConfigCheck",
    "Contribution",
    "CycleStatus",
    "DashboardData",
    "Data",
    "DatasetDetails",
    "DatasetDiff",
    "Demo",
    "EventKind",
    "Example",
    "Explanation",
    "FeedbackResult",
    "FittedModel",
    "ForecastLabels",
    "Initialized",
    "JournalReplay",
    "LoadedModel",
    "LoggedExplanation",
    "ModelDiff",
    "Models",
    "Monitor",
    "Origin",
    "PointInTime",
    "Prediction",
    "Predictions",
    "Project",
    "ProjectDraft",
    "Quarantine",
    "ReplayResult",
    "Retrain",
    "Rollback",
    "SchemaAccepted",
    "Snapshot",
    "TaskKind",
    "Tick",
    "TrainOutcome",
    "TriggerKind",
    "VersionComparison",
    "VersionSide",
    "Worker",
    "WorkerEvent",
    "configure_logging",
    "configure_process",
    "example_names",
    "get_example",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.project' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
