"""Validation: data contracts (inferred, then enforced), cleaning, quarantine and versioned snapshots."""

from __future__ import annotations

from loopml.validate.checks import (
    CheckResult,
    ChunkChecker,
    SchemaChange,
    coerce_column,
    enforce,
    schema_changes,
)
from loopml.validate.contract import (
    ColumnSpec,
    ContractInferrer,
    DataContract,
    infer_contract,
    latest_contract,
    load_contract,
    save_contract,
)
from loopml.validate.datasets import (
    DatasetVersion,
    QuarantineInfo,
    diff_versions,
    get_version,
    list_versions,
    load_quarantine,
    load_snapshot,
    quarantine_info,
    watermark_state,
)
from loopml.validate.ingest import IngestResult, contracts_dir, ingest
from loopml.validate.rules import apply_rules
from loopml.validate.schema import accept_schema

__all__ = [
    "CheckResult",
    "ChunkChecker",
    "ColumnSpec",
    "ContractInferrer",
    "DataContract",
    "DatasetVersion",
    "IngestResult",
    "QuarantineInfo",
    "SchemaChange",
    "accept_schema",
    "apply_rules",
    "coerce_column",
    "contracts_dir",
    "diff_versions",
    "enforce",
    "get_version",
    "infer_contract",
    "ingest",
    "latest_contract",
    "list_versions",
    "load_contract",
    "load_quarantine",
    "load_snapshot",
    "quarantine_info",
    "save_contract",
    "schema_changes",
    "watermark_state",
]
