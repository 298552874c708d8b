"""``project.data``: ingest, data set versions, their quarantine and diffs, and schema changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.errors import InputError
from loopml.validate import (
    DataContract,
    DatasetVersion,
    IngestResult,
    SchemaChange,
    accept_schema,
    contracts_dir,
    diff_versions,
    get_version,
    ingest,
    latest_contract,
    list_versions,
    load_quarantine,
    load_snapshot,
    quarantine_info,
    watermark_state,
)
from loopml.validate.datasets import latest_version

if TYPE_CHECKING:
    from loopml.project.core import Project

__all__ = ["Data", "DatasetDetails", "DatasetDiff", "Quarantine", "SchemaAccepted", "Snapshot"]


@dataclass(frozen=True)
class DatasetDetails:
    """One data set version with its quarantine counts, schema changes and the watermark."""

    dataset: DatasetVersion
    quarantine_by_rule: dict[str, int]
    schema_changes: dict[str, Any]
    watermark: dict[str, Any] | None


@dataclass(frozen=True)
class Quarantine:
    """The rows an ingest set aside: counts per rule, and the rows (optionally of one rule) with the
    rule, the column and the value that failed (``_row``, ``_rule``, ``_column``, ``_value``)."""

    dataset: DatasetVersion
    counts: dict[str, int]
    rule: str | None
    rows: pd.DataFrame

    def export(self, path: str | Path) -> Path:
        """Write the rows to a ``.csv`` or ``.parquet`` file to fix and ingest again
        (``loopml ingest --input FILE``), each with the rule, the column and the value that failed
        (``_row``, ``_rule``, ``_column``, ``_value``: :data:`~loopml.validate.QUARANTINE_COLUMNS`),
        which the ingest of the fixed file ignores."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".csv":
            self.rows.to_csv(target, index=False)
        elif suffix == ".parquet":
            self.rows.to_parquet(target, index=False)
        else:
            raise InputError(f"--export '{target}' must end in .csv or .parquet.")
        return target


@dataclass(frozen=True)
class DatasetDiff:
    """What changed between two data set versions: schema, row counts, rows added and removed."""

    name: str
    old: dict[str, Any]
    new: dict[str, Any]
    same_content: bool
    matched_by: list[str] | str
    rows_added: int
    rows_removed: int
    columns_added: list[str]
    columns_removed: list[str]
    type_changes: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["from"], out["to"] = out.pop("old"), out.pop("new")
        return out


@dataclass(frozen=True)
class SchemaAccepted:
    """A new contract version written from the source's current columns and types."""

    contract: DataContract
    change: SchemaChange

    @property
    def contract_file(self) -> str:
        return f"contracts/{self.contract.name}.v{self.contract.version}.yaml"


@dataclass(frozen=True)
class Snapshot:
    """A data set version and its rows."""

    dataset: DatasetVersion
    frame: pd.DataFrame


class Data:
    """``project.data``: what the project ingested, version by version."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def ingest(
        self,
        input_path: str | Path | None = None,
        *,
        progress: Callable[[str, int], None] | None = None,
        dask: Any = None,
    ) -> IngestResult:
        """Read the source (or one ``input_path`` file of fixed rows) into a new data set version:
        clean it, enforce (on the first ingest: infer and save) the data contract, quarantine the
        rows that fail, write the snapshot.

        ``progress(phase, rows)`` is called after each chunk. With ``dask`` (a scheduler address,
        ``"local"`` or a ``distributed.Client``) the rows of a Parquet source are checked on the
        cluster. Companion models (:attr:`Project.companions`) get the same rows under their names.
        First the project file is checked against the source's columns (:meth:`Project.check`).
        """
        project = self._project
        path = Path(input_path) if input_path is not None else None
        for checked in (project, *project.companions):  # before anything is read or written
            checked.check(path)
        result = ingest(project.settings, project.store, input_path=path, progress=progress, dask=dask)
        for companion in project.companions:
            ingest(companion.settings, project.store, input_path=path, dask=dask)
        return result

    def versions(self) -> list[DatasetVersion]:
        """Every version of the project's data set, newest first."""
        return list_versions(self._project.store, self._project.name)

    def get(self, version: int | None = None) -> DatasetVersion:
        """One version (the latest by default)."""
        return get_version(self._project.store, self._project.name, version)

    def latest(self) -> DatasetVersion | None:
        """The latest version, or None before the first ingest."""
        return latest_version(self._project.store, self._project.name)

    def details(self, version: int | None = None) -> DatasetDetails:
        """One version with its quarantine counts per rule, schema changes and the watermark."""
        store = self._project.store
        dataset = self.get(version)
        info = quarantine_info(store, dataset)
        return DatasetDetails(dataset, info.counts, info.schema_changes, watermark_state(store, dataset.name))

    def quarantine(self, version: int | None = None, rule: str | None = None) -> Quarantine:
        """The rows set aside by an ingest (optionally those of one ``rule``)."""
        store = self._project.store
        dataset = self.get(version)
        counts = quarantine_info(store, dataset).counts
        return Quarantine(dataset, counts, rule, load_quarantine(store, dataset, rule))

    def diff(self, old: int, new: int | None = None) -> DatasetDiff:
        """What changed from version ``old`` to ``new`` (the latest by default), rows matched by the
        id column when both versions have it."""
        project = self._project
        target = new if new is not None else self.get().version
        found = diff_versions(project.store, project.name, old, target, id_column=project.settings.id_column)
        found["old"], found["new"] = found.pop("from"), found.pop("to")
        return DatasetDiff(**found)

    def accept_schema(self) -> SchemaAccepted:
        """Write the next contract version from the source's current columns and types."""
        contract, change = accept_schema(self._project.settings, self._project.store)
        return SchemaAccepted(contract, change)

    def snapshot(self, version: int | None = None) -> Snapshot:
        """A version's rows (the latest by default)."""
        dataset, frame = load_snapshot(self._project.store, self._project.name, version)
        return Snapshot(dataset, frame)

    def contract(self) -> DataContract:
        """The latest data contract (inferred at the first ingest, edited or accepted since)."""
        project = self._project
        found = latest_contract(contracts_dir(project.directory), project.name)
        if found is None:
            raise InputError(f"project '{project.name}' has no data contract yet; run `loopml ingest`.")
        return found
