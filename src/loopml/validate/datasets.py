"""Data set versions in the store: list, show, load, quarantine, watermark, diff."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import func, select

from loopml.errors import ConfigError, NotFoundError
from loopml.sources.files import stream_parquet
from loopml.store import Store, tables
from loopml.validate.seen import row_hashes

__all__ = [
    "DatasetVersion",
    "QuarantineInfo",
    "diff_versions",
    "get_version",
    "latest_version",
    "list_versions",
    "load_quarantine",
    "load_snapshot",
    "quarantine_info",
    "read_watermark",
    "watermark_state",
]


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
    created_at: Any = None

    @property
    def accepted(self) -> int:
        """Rows this ingest accepted (``rows`` also counts those carried over from the parent)."""
        return self.rows_read - self.rows_quarantined


@dataclass(frozen=True)
class QuarantineInfo:
    """The quarantine snapshot of one data set version."""

    uri: str | None
    content_hash: str | None
    rows: int
    counts: dict[str, int]
    schema_changes: dict[str, Any]


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(**{k: getattr(row, k) for k in DatasetVersion.__dataclass_fields__})


def list_versions(store: Store, name: str) -> list[DatasetVersion]:
    """Every version of data set ``name``, newest first."""
    dv = tables.dataset_versions
    with store.engine.connect() as conn:
        rows = conn.execute(select(dv).where(dv.c.name == name).order_by(dv.c.version.desc())).all()
    return [_version(r) for r in rows]


def latest_version(store: Store, name: str) -> DatasetVersion | None:
    """The newest version of ``name``, or None before the first ingest."""
    dv = tables.dataset_versions
    query = select(dv).where(dv.c.name == name).order_by(dv.c.version.desc()).limit(1)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return _version(row) if row is not None else None


def get_version(store: Store, name: str, version: int | None = None) -> DatasetVersion:
    """Version ``version`` of ``name`` (the latest by default); a missing one is a NotFoundError."""
    dv = tables.dataset_versions
    query = select(dv).where(dv.c.name == name)
    query = query.where(dv.c.version == version) if version else query.order_by(dv.c.version.desc())
    with store.engine.connect() as conn:
        row = conn.execute(query.limit(1)).first()
        count = conn.execute(select(func.count()).select_from(dv).where(dv.c.name == name)).scalar()
    if row is None:
        what = f"version {version}" if version else "any version"
        raise NotFoundError(
            f"data set '{name}' has no {what} ({count} ingested).",
            hint="Run `loopml ingest` first." if not count else "See `loopml data list`.",
        )
    return _version(row)


def load_snapshot(store: Store, name: str, version: int | None = None) -> tuple[DatasetVersion, pd.DataFrame]:
    """A data set version (the latest by default) and its rows."""
    dataset = get_version(store, name, version)
    frame = pd.read_parquet(io.BytesIO(store.artifacts.get_bytes(dataset.uri, sha256=dataset.content_hash)))
    return dataset, frame


def quarantine_info(store: Store, dataset: DatasetVersion) -> QuarantineInfo:
    """Counts per rule and where the quarantined rows of ``dataset`` are."""
    qs = tables.quarantine_snapshots
    with store.engine.connect() as conn:
        row = conn.execute(select(qs).where(qs.c.dataset_version_id == dataset.id)).first()
    if row is None:  # a version written before quarantine snapshots were recorded
        return QuarantineInfo(None, None, dataset.rows_quarantined, {}, {})
    return QuarantineInfo(row.uri, row.content_hash, row.rows, dict(row.counts), dict(row.schema_changes))


# The columns a quarantine snapshot adds to each set-aside row: its row number in the ingest, the
# rule and the column that failed, and the value found. A re-ingested export drops them.
QUARANTINE_COLUMNS = ("_row", "_rule", "_column", "_value")


def load_quarantine(store: Store, dataset: DatasetVersion, rule: str | None = None) -> pd.DataFrame:
    """The quarantined rows of ``dataset``: original values, ``_row``, ``_rule``, ``_column``, ``_value``."""
    info = quarantine_info(store, dataset)
    if info.uri is None:
        return pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    frame = pd.read_parquet(io.BytesIO(store.artifacts.get_bytes(info.uri, sha256=info.content_hash)))
    return frame[frame["_rule"] == rule].reset_index(drop=True) if rule else frame


def watermark_state(store: Store, name: str) -> dict[str, Any] | None:
    """``{"column", "value", "dataset_version_id", "updated_at"}`` of the last incremental ingest."""
    st = tables.ingest_state
    with store.engine.connect() as conn:
        row = conn.execute(select(st).where(st.c.name == name)).first()
    if row is None:
        return None
    return {
        "column": row.watermark_column,
        "value": row.watermark.get("value"),
        "dataset_version_id": row.dataset_version_id,
        "updated_at": row.updated_at,
    }


def read_watermark(store: Store, name: str, column: str) -> Any:
    """The watermark to read after, or None before the first incremental ingest."""
    state = watermark_state(store, name)
    if state is None:
        return None
    if state["column"] != column:
        raise ConfigError(
            f"loopml.yaml: source.watermark is '{column}' but data set '{name}' was ingested by "
            f"'{state['column']}'; a new watermark column would read rows twice.",
            hint=f"Set source.watermark back to '{state['column']}'.",
        )
    return state["value"]


def _schema(store: Store, dataset: DatasetVersion) -> dict[str, str]:
    with store.artifacts.open(dataset.uri) as fh:
        schema = pq.read_schema(fh)
    return {name: str(schema.field(name).type) for name in schema.names}


def _hashes(store: Store, dataset: DatasetVersion, columns: list[str]) -> np.ndarray:
    with store.artifacts.open(dataset.uri) as fh:
        parquet = stream_parquet(fh)
        parts = [row_hashes(b.to_pandas(), columns) for b in parquet.iter_batches(columns=columns)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def diff_versions(store: Store, name: str, a: int, b: int, id_column: str | None = None) -> dict[str, Any]:
    """What changed from version ``a`` to ``b``: schema, row counts, rows added and removed.

    Rows are matched by ``id_column`` when both versions have it, else by their values over the
    columns the two versions share.
    """
    old, new = get_version(store, name, a), get_version(store, name, b)
    old_schema, new_schema = _schema(store, old), _schema(store, new)
    shared = [c for c in new_schema if c in old_schema]
    key = [id_column] if id_column and id_column in shared else shared
    old_keys, new_keys = _hashes(store, old, key), _hashes(store, new, key)
    return {
        "name": name,
        "from": {"version": old.version, "rows": old.rows, "contract_version": old.contract_version},
        "to": {"version": new.version, "rows": new.rows, "contract_version": new.contract_version},
        "same_content": old.content_hash == new.content_hash,
        "matched_by": key if key == [id_column] else "all shared columns",
        "rows_added": int((~np.isin(new_keys, old_keys)).sum()),
        "rows_removed": int((~np.isin(old_keys, new_keys)).sum()),
        "columns_added": [c for c in new_schema if c not in old_schema],
        "columns_removed": [c for c in old_schema if c not in new_schema],
        "type_changes": [
            {"column": c, "from": old_schema[c], "to": new_schema[c]}
            for c in shared
            if old_schema[c] != new_schema[c]
        ],
    }
