"""The metadata store (SQL) and the artifact store (fsspec); no machine learning here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from loopml.store import tables
from loopml.store.artifacts import ArtifactStore, sha256_bytes
from loopml.store.engine import create_store_engine, migrate, utcnow
from loopml.store.feedback import record_feedback
from loopml.store.monitoring import MonitorPass, latest_monitor_pass, record_monitor_pass
from loopml.store.predictions import (
    OnWrite,
    PredictionLogWriter,
    count_predictions,
    insert_predictions,
    insert_serialized,
    known_predictions,
    logged_prediction,
    replay_journal,
    write_predictions,
)
from loopml.store.retention import (
    PruneResult,
    journal_dir,
    prune_outbox,
    prune_predictions,
    tend_prediction_log,
)

__all__ = [
    "ArtifactStore",
    "MonitorPass",
    "OnWrite",
    "PredictionLogWriter",
    "PruneResult",
    "Store",
    "count_predictions",
    "create_store_engine",
    "insert_predictions",
    "insert_serialized",
    "journal_dir",
    "known_predictions",
    "latest_monitor_pass",
    "logged_prediction",
    "migrate",
    "open_store",
    "prune_outbox",
    "prune_predictions",
    "record_feedback",
    "record_monitor_pass",
    "replay_journal",
    "sha256_bytes",
    "tables",
    "tend_prediction_log",
    "utcnow",
    "write_predictions",
]


@dataclass(frozen=True)
class Store:
    """The two stores a project uses, opened together."""

    engine: Engine
    artifacts: ArtifactStore


def open_store(db_url: str, artifacts_url: str, artifacts_options: Mapping[str, Any] | None = None) -> Store:
    """Open (and migrate) the metadata store and the artifact store (``artifacts_options`` go to fsspec)."""
    return Store(
        engine=create_store_engine(db_url),
        artifacts=ArtifactStore(artifacts_url, **(artifacts_options or {})),
    )
