"""Recording an ingest: artifacts first, then one transaction; undone completely if anything fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from loopml.errors import StoreError
from loopml.store import Store, tables, utcnow
from loopml.validate.contract import DataContract, save_contract
from loopml.validate.datasets import DatasetVersion
from loopml.validate.snapshots import file_sha256

__all__ = ["Outcome", "commit", "jsonable_watermark"]


@dataclass(frozen=True)
class Outcome:
    """Everything an ingest produced, ready to record."""

    accepted_file: Path
    quarantine_file: Path | None
    rows: int
    rows_read: int
    rows_quarantined: int
    counts: dict[str, int]
    schema: dict[str, Any]
    source: dict[str, Any]
    watermark_column: str | None
    watermark: Any
    new_contract: DataContract | None


def jsonable_watermark(value: Any) -> Any:
    """A watermark as JSON: times as ISO 8601 text, numpy numbers as Python ones."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _put(store: Store, path: Path, key_of: str, written: list[str]) -> tuple[str, str]:
    digest = file_sha256(path)
    key = key_of.format(digest=digest)
    if not store.artifacts.exists(key):
        written.append(key)
        store.artifacts.put_file(key, path)
    return key, digest


def _insert(conn: Any, name: str, outcome: Outcome, contract: DataContract, data: tuple[str, str]) -> Any:
    dv = tables.dataset_versions
    parent = conn.execute(
        select(dv.c.id, dv.c.version).where(dv.c.name == name).order_by(dv.c.version.desc()).limit(1)
    ).first()
    row: dict[str, Any] = {
        "name": name,
        "version": (parent.version + 1) if parent else 1,
        "content_hash": data[1],
        "uri": data[0],
        "rows": outcome.rows,
        "rows_read": outcome.rows_read,
        "rows_quarantined": outcome.rows_quarantined,
        "source": outcome.source,
        "contract_version": contract.version,
        "parent_id": parent.id if parent else None,
        "created_at": utcnow(),
    }
    row["id"] = conn.execute(insert(dv).returning(dv.c.id), row).scalar_one()
    return row


def _state(conn: Any, name: str, outcome: Outcome, version_id: int) -> None:
    if outcome.watermark_column is None or outcome.watermark is None:
        return
    st = tables.ingest_state
    values = {
        "watermark_column": outcome.watermark_column,
        "watermark": {"value": jsonable_watermark(outcome.watermark)},
        "dataset_version_id": version_id,
        "updated_at": utcnow(),
    }
    if conn.execute(select(st.c.name).where(st.c.name == name)).first():
        conn.execute(update(st).where(st.c.name == name).values(**values))
    else:
        conn.execute(insert(st).values(name=name, **values))


def commit(
    name: str, store: Store, contracts: Path, outcome: Outcome, contract: DataContract
) -> DatasetVersion:
    """Store the snapshot and its quarantine, then record both and the watermark in one transaction."""
    written: list[str] = []
    contract_file: Path | None = None
    try:
        data = _put(store, outcome.accepted_file, f"datasets/{name}/{{digest}}.parquet", written)
        quarantine: tuple[str | None, str | None] = (None, None)
        if outcome.quarantine_file is not None:
            key = f"datasets/{name}/{{digest}}.quarantine.parquet"
            quarantine = _put(store, outcome.quarantine_file, key, written)
        if outcome.new_contract is not None:
            contract_file = save_contract(outcome.new_contract, contracts)
        with store.engine.begin() as conn:
            row = _insert(conn, name, outcome, contract, data)
            conn.execute(
                insert(tables.quarantine_snapshots).values(
                    dataset_version_id=row["id"],
                    uri=quarantine[0],
                    content_hash=quarantine[1],
                    rows=outcome.rows_quarantined,
                    counts=outcome.counts,
                    schema_changes=outcome.schema,
                    created_at=utcnow(),
                )
            )
            _state(conn, name, outcome, row["id"])
    except SQLAlchemyError as exc:
        _undo(store, written, contract_file)
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise StoreError(f"could not record data set '{name}' in the metadata store: {reason}") from None
    except BaseException:
        _undo(store, written, contract_file)
        raise
    return DatasetVersion(**{k: v for k, v in row.items() if k in DatasetVersion.__dataclass_fields__})


def _undo(store: Store, written: list[str], contract_file: Path | None) -> None:
    for key in written:
        store.artifacts.delete(key)
    if contract_file is not None:
        contract_file.unlink(missing_ok=True)
