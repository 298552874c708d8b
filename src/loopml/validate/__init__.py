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
    QUARANTINE_COLUMNS,
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
from loopml.validate.frames import RowCheck, check_rows
from loopml.validate.ingest import IngestResult, contracts_dir, ingest
from loopml.validate.policy import SCORING_RULES, ScoringPolicy, Violation, violations_error
from loopml.validate.requests import CheckedRecords, RecordChecker
from loopml.validate.rules import apply_rules
from loopml.validate.schema import accept_schema

__all__ = [
    "QUARANTINE_COLUMNS",
    "SCORING_RULES",
    "CheckResult",
    "CheckedRecords",
    "ChunkChecker",
    "ColumnSpec",
    "ContractInferrer",
    "DataContract",
    "DatasetVersion",
    "IngestResult",
    "QuarantineInfo",
    "RecordChecker",
    "RowCheck",
    "SchemaChange",
    "ScoringPolicy",
    "Violation",
    "accept_schema",
    "apply_rules",
    "check_rows",
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
    "violations_error",
    "watermark_state",
]
