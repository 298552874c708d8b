"""Validation: data contracts (inferred, then enforced), checks, cleaning and quarantine."""

from __future__ import annotations

from loopml.validate.checks import CheckResult, SchemaChange, coerce_column, enforce, schema_changes
from loopml.validate.contract import (
    ColumnSpec,
    DataContract,
    infer_contract,
    latest_contract,
    load_contract,
    save_contract,
)
from loopml.validate.ingest import DatasetVersion, IngestResult, ingest, load_snapshot

__all__ = [
    "CheckResult",
    "ColumnSpec",
    "DataContract",
    "DatasetVersion",
    "IngestResult",
    "SchemaChange",
    "coerce_column",
    "enforce",
    "infer_contract",
    "ingest",
    "latest_contract",
    "load_contract",
    "load_snapshot",
    "save_contract",
    "schema_changes",
]
