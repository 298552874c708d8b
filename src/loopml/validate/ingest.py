"""Ingest: read a source in chunks, clean and enforce the contract, write a versioned snapshot.

Memory stays bounded by the chunk size: rows stream from the source through the checks into Parquet
files on local disk, which are hashed and copied to the artifact store at the end. The first ingest
infers the contract in a first pass over the data (spooled to local disk, so the source is read
once). Nothing is visible until one final transaction records the snapshot, its quarantine and the
new watermark; if anything fails before or during it, the artifacts written are removed and the
store is exactly as before.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.config import Settings
from loopml.errors import ContractError, DataError
from loopml.store import Store
from loopml.validate.checks import ChunkChecker, SchemaChange, schema_changes
from loopml.validate.cleaning import filter_mask, trim
from loopml.validate.columnar import ColumnarChecker, ColumnarResult
from loopml.validate.contract import ContractInferrer, DataContract, latest_contract
from loopml.validate.datasets import DatasetVersion
from loopml.validate.plan import (
    IngestRun,
    Plan,
    Progress,
    batches,
    contracts_dir,
    new_rows,
    open_input,
    plan_ingest,
)
from loopml.validate.quality import write_quality_report
from loopml.validate.record import Outcome, commit
from loopml.validate.rules import apply_rules
from loopml.validate.snapshots import ParquetSink, arrow_schema, conform, iter_parquet

log = logging.getLogger(__name__)

__all__ = ["IngestResult", "Progress", "contracts_dir", "infer_from_source", "ingest", "open_input"]


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did. ``accepted + quarantined == rows_read`` for the rows read by this ingest."""

    dataset: DatasetVersion
    contract: DataContract
    contract_created: bool
    quarantine_counts: dict[str, int]
    added_columns: tuple[str, ...]
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    new_version: bool = True
    watermark: Any = None
    schema: SchemaChange = field(default_factory=SchemaChange)
    report: str | None = None


class _Spool:
    """Raw chunks kept on local disk (Arrow IPC) so that the first ingest reads its source once."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.ok = directory, True
        self.files: list[Path] = []

    def add(self, frame: pd.DataFrame) -> None:
        if not self.ok:
            return
        path = self.directory / f"spool-{len(self.files):06d}.arrow"
        try:
            frame.reset_index(drop=True).to_feather(path, compression="uncompressed")
            self.files.append(path)
        except Exception:  # a column of mixed Python types: fall back to reading the source again
            self.ok = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for path in self.files:
            yield pd.read_feather(path)


def _growing_keys(settings: Settings) -> list[str]:
    """Columns the inferred contract gives no ``max``: the watermark, and the entity keys (new
    customers, cards, engines and products appear with new, often larger, identifiers)."""
    features, train = settings.features, settings.train
    keys = [settings.source.watermark, train.group_column, *(w.entity for w in features.windows)]
    if features.sequences is not None:
        keys.append(features.sequences.entity)
    if settings.ranking is not None:
        keys += [settings.ranking.user, settings.ranking.item]
    if settings.forecast is not None:
        keys += [settings.forecast.item, settings.forecast.group_column]
    return [key for key in keys if key is not None]


def infer_from_source(
    settings: Settings, frames: Iterator[pd.DataFrame], progress: Progress | None = None
) -> DataContract:
    """Infer the data set's contract from frames (after trimming and the configured filters)."""
    inferrer = ContractInferrer(
        settings.name,
        id_column=settings.id_column,
        event_time=settings.event_time,
        target=settings.target,
        category_cap=settings.contract.category_cap,
        unbounded=_growing_keys(settings),
        target_classes=settings.task.classifies,
    )
    seen = 0
    for frame in frames:
        clean = trim(frame) if settings.cleaning.trim else frame
        keep = pd.Series(True, index=clean.index)
        for rule in settings.cleaning.filters:
            keep &= ~filter_mask(clean, rule)
        inferrer.update(clean.loc[keep])
        seen += len(frame)
        if progress:
            progress("inferring the contract", seen)
    if not inferrer.result().columns:
        raise DataError(
            f"source {settings.source.path or settings.source.url} gave no columns to infer a contract from.",
            hint="Check source settings in loopml.yaml: the source is empty.",
        )
    return inferrer.result()


def _seed(checker: ChunkChecker, plan: Plan, store: Store, sink: ParquetSink, contract: DataContract) -> None:
    """Appending: copy the parent snapshot's rows first, and remember them for de-duplication."""
    if plan.parent is None or not plan.append:
        return
    with store.artifacts.open(plan.parent.uri) as fh:
        for frame in iter_parquet(fh):
            rows = conform(frame, contract)
            checker.seed(rows)
            sink.write(rows)


def _check_all(
    plan: Plan,
    frames: Iterator[pd.DataFrame],
    checker: ChunkChecker,
    run: IngestRun,
    progress: Progress | None,
) -> None:
    first, columnar = True, ColumnarChecker(checker)
    for frame in frames:
        if first:
            run.added = schema_changes(frame, checker.contract).added
            first = False
        new, mark = new_rows(frame, plan, checker.contract)
        if mark is not None and (run.watermark is None or mark > run.watermark):
            run.watermark = mark
        result = columnar.check(new) or checker.check(new)
        if isinstance(result, ColumnarResult):
            run.accepted.write_table(result.accepted)
        else:
            run.accepted.write(result.accepted)
        run.quarantined.write(result.quarantined)
        run.rows_read += len(new)
        for rule, count in result.counts.items():
            run.counts[rule] = run.counts.get(rule, 0) + count
        if progress:
            progress("checking rows", run.rows_read)


def _contract(settings: Settings) -> DataContract | None:
    return latest_contract(contracts_dir(settings.project_dir), settings.name)


def ingest(
    settings: Settings,
    store: Store,
    *,
    input_path: Path | None = None,
    progress: Progress | None = None,
    dask: Any = None,
) -> IngestResult:
    """Read the source into a new data set version (its contract inferred on the first ingest).

    With ``source.watermark``, only rows past the last ingest's watermark are read and the new version
    holds the previous version's rows plus the new ones; ``input_path`` adds the rows of one file the
    same way (fixed quarantine rows, for example). When there is nothing new, no version is written.

    ``dask`` (a scheduler address, ``"local"`` or a ``distributed.Client``) checks the rows of a
    Parquet source on a Dask cluster (:mod:`loopml.validate.cluster`), with the same result; a first
    ingest there infers the contract from the first :data:`~loopml.validate.cluster.SAMPLE_ROWS` rows.
    """
    plan = plan_ingest(settings, store, input_path)
    chunk = settings.source.chunk_rows
    with tempfile.TemporaryDirectory(prefix="loopml-ingest-") as tmp:
        found = _contract(settings)
        created = found is None
        spool: _Spool | None = None
        if found is None and dask is not None:  # a sample here, every row checked on the cluster
            from loopml.validate.cluster import sample

            found = infer_from_source(settings, sample(batches(plan, None, chunk)), progress)
        elif found is None:
            spool = _Spool(Path(tmp))
            frames = batches(plan, None, chunk)
            found = infer_from_source(settings, _spooled(frames, spool), progress)
        contract = apply_rules(found, settings.contract, settings.cleaning)
        checker = ChunkChecker(contract, settings.cleaning)
        run = IngestRun(ParquetSink(Path(tmp) / "accepted.parquet", arrow_schema(contract)),
                   ParquetSink(Path(tmp) / "quarantine.parquet"))  # fmt: skip
        try:
            _seed(checker, plan, store, run.accepted, contract)
            if dask is not None:
                from loopml.validate.cluster import check_on_dask

                check_on_dask(dask, plan, checker, run, chunk, progress)
            else:
                wm_dtype = contract.column(plan.watermark_column).dtype if plan.watermark_column else None
                frames = iter(spool) if spool is not None and spool.ok else batches(plan, wm_dtype, chunk)
                _check_all(plan, frames, checker, run, progress)
        finally:
            run.accepted.close()
            run.quarantined.close()
        schema = SchemaChange(added=run.added, type_changed=checker.type_changes())
        if schema.breaking:
            raise ContractError(
                f"data breaks contract '{contract.name}' v{contract.version}: {schema.describe()}.",
                hint="Fix the source, or run `loopml data accept-schema` to write the next contract version.",
            )
        result = _finish(settings, store, plan, run, contract, found if created else None, schema)
    return _with_report(settings, store, result) if result.new_version else result


def _with_report(settings: Settings, store: Store, result: IngestResult) -> IngestResult:
    """Attach the data quality report; a report that fails to render never fails the ingest."""
    try:
        key = write_quality_report(settings, store, result.dataset, result.contract, result.quarantine_counts)
    except Exception as exc:
        log.warning("could not write the data quality report: %s", exc)
        return result
    return replace(result, report=key)


def _spooled(frames: Iterator[pd.DataFrame], spool: _Spool) -> Iterator[pd.DataFrame]:
    for frame in frames:
        spool.add(frame)
        yield frame


def _finish(
    settings: Settings,
    store: Store,
    plan: Plan,
    run: IngestRun,
    contract: DataContract,
    created: DataContract | None,
    schema: SchemaChange,
) -> IngestResult:
    accepted = run.rows_read - run.quarantined.rows
    common: dict[str, Any] = {
        "contract": contract,
        "contract_created": created is not None,
        "quarantine_counts": run.counts,
        "added_columns": run.added,
        "rows_read": run.rows_read,
        "accepted": accepted,
        "quarantined": run.quarantined.rows,
        "schema": schema,
    }
    if run.rows_read == 0 and plan.append and plan.parent is not None:
        return IngestResult(dataset=plan.parent, new_version=False, watermark=plan.after, **common)
    outcome = Outcome(
        accepted_file=run.accepted.path,
        quarantine_file=run.quarantined.path if run.quarantined.rows else None,
        rows=run.accepted.rows,
        rows_read=run.rows_read,
        rows_quarantined=run.quarantined.rows,
        counts=run.counts,
        schema=schema.to_dict(),
        source={
            **plan.source.describe(),
            **({"appended_to": plan.parent.version} if plan.append and plan.parent else {}),
        },
        watermark_column=plan.watermark_column,
        watermark=run.watermark if run.watermark is not None else plan.after,
        new_contract=apply_rules(created, settings.contract, settings.cleaning) if created else None,
    )
    dataset = commit(settings.name, store, contracts_dir(settings.project_dir), outcome, contract)
    return IngestResult(dataset=dataset, watermark=outcome.watermark, **common)
