"""The metadata store's tables (SQLAlchemy Core).

This is the current schema; Alembic migrations under ``migrations/versions`` create it, and a test
checks that upgrading an empty database to head gives exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "action_deliveries",
    "action_endpoints",
    "action_outbox",
    "alerts",
    "alias_history",
    "dataset_versions",
    "feedback",
    "ingest_state",
    "leases",
    "metadata",
    "model_aliases",
    "model_versions",
    "monitor_latest",
    "predictions",
    "quarantine_snapshots",
    "retrain_events",
    "training_runs",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ts = DateTime(timezone=True)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("uri", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("rows_read", BigInteger, nullable=False),
    Column("rows_quarantined", BigInteger, nullable=False, default=0),
    Column("source", JSON, nullable=False),
    Column("contract_version", Integer, nullable=True),
    Column("parent_id", Integer, ForeignKey("dataset_versions.id"), nullable=True),
    Column("created_at", _ts, nullable=False),
    UniqueConstraint("name", "version"),
)

quarantine_snapshots = Table(
    "quarantine_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_version_id", Integer, ForeignKey("dataset_versions.id"), nullable=False),
    Column("uri", Text, nullable=True),
    Column("content_hash", String(64), nullable=True),
    Column("rows", BigInteger, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("schema_changes", JSON, nullable=False),
    Column("created_at", _ts, nullable=False),
    UniqueConstraint("dataset_version_id"),
)

ingest_state = Table(
    "ingest_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("watermark_column", String(200), nullable=False),
    Column("watermark", JSON, nullable=False),
    Column("dataset_version_id", Integer, ForeignKey("dataset_versions.id"), nullable=False),
    Column("updated_at", _ts, nullable=False),
)

training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("dataset_version_id", Integer, ForeignKey("dataset_versions.id"), nullable=True),
    Column("status", String(20), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", _ts, nullable=False),
    Column("finished_at", _ts, nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", Integer, ForeignKey("training_runs.id"), nullable=True),
    Column("artifact_key", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("flavor", String(50), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("signature", JSON, nullable=False),
    Column("created_at", _ts, nullable=False),
    UniqueConstraint("name", "version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", _ts, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version", Integer, nullable=True),
    Column("previous_version", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("created_at", _ts, nullable=False),
    Index(None, "name", "alias", "created_at"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("created_at", _ts, nullable=False),
    Column("origin", String(20), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("score", Float, nullable=True),
    Column("output", JSON, nullable=False),
    Index(None, "model_name", "created_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(36), nullable=False),
    Column("label", JSON, nullable=False),
    Column("received_at", _ts, nullable=False),
    Index(None, "prediction_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("window_start", _ts, nullable=True),
    Column("created_at", _ts, nullable=False),
    Index(None, "model_name", "created_at"),
)

monitor_latest = Table(  # the newest recorded monitoring pass of each model: what /metrics exposes
    "monitor_latest",
    metadata,
    Column("model_name", String(200), primary_key=True),
    Column("model_version", Integer, nullable=False),
    Column("created_at", _ts, nullable=False),
    Column("summary", JSON, nullable=False),
)

retrain_events = Table(
    "retrain_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("decision", Boolean, nullable=True),
    Column("reasons", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Column("challenger_version", Integer, nullable=True),
    Column("started_at", _ts, nullable=False),
    Column("finished_at", _ts, nullable=True),
    Index(None, "model_name", "kind", "started_at"),
)


# -- actions: the transactional outbox, one row per attempt, and endpoints disabled by HTTP 410 ----

action_outbox = Table(
    "action_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),  # idempotency key: the same on every retry
    Column("event", String(20), nullable=False),  # prediction | alert
    Column("source_id", String(64), nullable=False),  # the prediction or alert that caused it
    Column("rule", String(200), nullable=False),
    Column("endpoint", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("dedupe_key", String(500), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending | delivered | dead | suppressed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", _ts, nullable=False),
    Column("claimed_until", _ts, nullable=True),
    Column("claim_token", String(36), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", _ts, nullable=False),
    Column("delivered_at", _ts, nullable=True),
    UniqueConstraint("key"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "rule", "dedupe_key", "created_at"),
    Index(None, "rule", "created_at"),
    Index(None, "endpoint", "status", "id"),  # an endpoint's oldest pending action (its probe)
)

action_deliveries = Table(
    "action_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("action_outbox.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),  # delivered | retry | dead | gone
    Column("error", Text, nullable=True),
    Column("retry_after", Float, nullable=True),
    Column("duration_ms", Float, nullable=False),
    Column("started_at", _ts, nullable=False),
    Index(None, "outbox_id"),
)

action_endpoints = Table(
    "action_endpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("disabled", Boolean, nullable=False),  # by HTTP 410, until a replay
    Column("reason", Text, nullable=True),
    Column("updated_at", _ts, nullable=False),
    # the circuit breaker: down_since is set while the endpoint fails; one probe at next_probe_at
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("down_since", _ts, nullable=True),
    Column("next_probe_at", _ts, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("alerted_at", _ts, nullable=True),  # when this outage's endpoint_down alert was raised
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_at", _ts, nullable=False),
    Column("expires_at", _ts, nullable=False),
)
