"""Ingest: read a source, enforce (or first infer) the contract, write a versioned snapshot."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select

from loopml.config import Settings
from loopml.errors import NotFoundError
from loopml.sources import open_source, read_all
from loopml.store import Store, sha256_bytes, tables, utcnow
from loopml.validate.checks import enforce
from loopml.validate.contract import DataContract, infer_contract, latest_contract, save_contract

__all__ = ["DatasetVersion", "IngestResult", "ingest", "load_snapshot"]


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable snapshot of a data set."""

    id: int
    name: str
    version: int
    content_hash: str
    uri: str
    rows: int
    rows_read: int
    rows_quarantined: int
    contract_version: int | None
    parent_id: int | None
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did."""

    dataset: DatasetVersion
    contract: DataContract
    contract_created: bool
    quarantine_counts: dict[str, int]
    added_columns: tuple[str, ...]


def contracts_dir(settings: Settings) -> Path:
    """Where contract YAML files live: ``<project>/contracts``."""
    return settings.project_dir / "contracts"


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def ingest(settings: Settings, store: Store) -> IngestResult:
    """Read the configured source into a new data set version (contract inferred on first ingest)."""
    cfg = settings.source
    source = open_source(cfg.kind, cfg.path, cfg.options, base_dir=settings.project_dir)
    frame = read_all(source)
    contract = latest_contract(contracts_dir(settings), settings.name)
    created = contract is None
    if contract is None:
        contract = infer_contract(
            frame,
            settings.name,
            id_column=settings.id_column,
            event_time=settings.event_time,
            target=settings.target,
        )
        save_contract(contract, contracts_dir(settings))
    checked = enforce(frame, contract)
    dataset = _record(settings, store, checked.accepted, checked.quarantined, source.describe(), contract)
    return IngestResult(dataset, contract, created, checked.counts, checked.schema.added)


def _record(
    settings: Settings,
    store: Store,
    accepted: pd.DataFrame,
    quarantined: pd.DataFrame,
    described: dict[str, Any],
    contract: DataContract,
) -> DatasetVersion:
    data = _parquet_bytes(accepted)
    digest = sha256_bytes(data)
    key = f"datasets/{settings.name}/{digest}.parquet"
    store.artifacts.put_bytes(key, data)
    if len(quarantined):
        store.artifacts.put_bytes(
            f"datasets/{settings.name}/{digest}.quarantine.parquet", _parquet_bytes(quarantined)
        )
    dv = tables.dataset_versions
    with store.engine.begin() as conn:
        parent = conn.execute(
            select(dv.c.id, dv.c.version).where(dv.c.name == settings.name).order_by(dv.c.version.desc())
        ).first()
        row: dict[str, Any] = {
            "name": settings.name,
            "version": (parent.version + 1) if parent else 1,
            "content_hash": digest,
            "uri": key,
            "rows": len(accepted),
            "rows_read": len(accepted) + len(quarantined),
            "rows_quarantined": len(quarantined),
            "source": described,
            "contract_version": contract.version,
            "parent_id": parent.id if parent else None,
            "created_at": utcnow(),
        }
        new_id = conn.execute(insert(dv).returning(dv.c.id), row).scalar_one()
    return DatasetVersion(
        id=new_id, **{k: v for k, v in row.items() if k in DatasetVersion.__dataclass_fields__}
    )


def load_snapshot(store: Store, name: str, version: int | None = None) -> tuple[DatasetVersion, pd.DataFrame]:
    """A data set version (the latest by default) and its rows."""
    dv = tables.dataset_versions
    query = select(dv).where(dv.c.name == name)
    query = query.where(dv.c.version == version) if version else query.order_by(dv.c.version.desc())
    with store.engine.connect() as conn:
        row = conn.execute(query.limit(1)).first()
        count = conn.execute(select(func.count()).select_from(dv).where(dv.c.name == name)).scalar()
    if row is None:
        what = f"version {version}" if version else "any version"
        raise NotFoundError(
            f"data set '{name}' has no {what} ({count} ingested).", hint="Run `loopml ingest` first."
        )
    fields = {k: getattr(row, k) for k in DatasetVersion.__dataclass_fields__}
    dataset = DatasetVersion(**fields)
    frame = pd.read_parquet(io.BytesIO(store.artifacts.get_bytes(row.uri, sha256=row.content_hash)))
    return dataset, frame
