"""The metadata store (SQL) and the artifact store (fsspec); no machine learning here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from loopml.store import tables
from loopml.store.artifacts import ArtifactStore, sha256_bytes
from loopml.store.engine import create_store_engine, migrate, utcnow
from loopml.store.feedback import record_feedback
from loopml.store.predictions import PredictionLogWriter, write_predictions

__all__ = [
    "ArtifactStore",
    "PredictionLogWriter",
    "Store",
    "create_store_engine",
    "migrate",
    "open_store",
    "record_feedback",
    "sha256_bytes",
    "tables",
    "utcnow",
    "write_predictions",
]


@dataclass(frozen=True)
class Store:
    """The two stores a project uses, opened together."""

    engine: Engine
    artifacts: ArtifactStore


def open_store(db_url: str, artifacts_url: str) -> Store:
    """Open (and migrate) the metadata store and the artifact store."""
    return Store(engine=create_store_engine(db_url), artifacts=ArtifactStore(artifacts_url))
