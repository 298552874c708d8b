"""``accept-schema``: write the next contract version from the source's current shape."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from loopml.config import Settings
from loopml.errors import InputError
from loopml.store import Store
from loopml.validate.checks import SchemaChange, coerce_column
from loopml.validate.cleaning import trim
from loopml.validate.contract import ColumnSpec, DataContract, latest_contract, save_contract
from loopml.validate.ingest import infer_from_source
from loopml.validate.plan import Progress, batches, contracts_dir, new_rows, plan_ingest

__all__ = ["accept_schema"]


class _TypeStats:
    """Per shared column: values that are not missing, and those that fail the current contract type."""

    def __init__(self, contract: DataContract) -> None:
        self.contract = contract
        self.counts: dict[str, list[int]] = {}

    def watch(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            clean = trim(frame)
            for spec in self.contract.columns:
                if spec.name in clean.columns:
                    raw = clean[spec.name]
                    failed = coerce_column(raw, spec).isna() & raw.notna()
                    count = self.counts.setdefault(spec.name, [0, 0])
                    count[0] += int(raw.notna().sum())
                    count[1] += int(failed.sum())
            yield frame

    def changed(self, name: str) -> bool:
        values, failed = self.counts.get(name, (0, 0))
        return bool(values) and failed == values


def _merge(current: DataContract, fresh: DataContract, stats: _TypeStats, has_rows: bool) -> list[ColumnSpec]:
    columns = []
    for spec in fresh.columns:
        if spec.name not in current.names:
            columns.append(spec.model_copy(update={"nullable": spec.nullable or has_rows}))
        elif stats.changed(spec.name):
            columns.append(spec)
        else:
            columns.append(current.column(spec.name))
    return columns


def accept_schema(
    settings: Settings, store: Store, progress: Progress | None = None
) -> tuple[DataContract, SchemaChange]:
    """Infer the source's current schema and save it as the next contract version.

    Columns whose type did not change keep their current spec (and any edits made to it); new
    columns get an inferred spec, nullable when earlier versions' rows lack them; dropped columns go.
    """
    current = latest_contract(contracts_dir(settings.project_dir), settings.name)
    if current is None:
        raise InputError(
            f"data set '{settings.name}' has no contract yet.", hint="Run `loopml ingest`: it infers one."
        )
    plan = plan_ingest(settings, store, None)
    wm_dtype = current.column(plan.watermark_column).dtype if plan.watermark_column in current.names else None
    frames = (new_rows(f, plan, current)[0] if plan.watermark_column in current.names else f
              for f in batches(plan, wm_dtype, settings.source.chunk_rows))  # fmt: skip
    stats = _TypeStats(current)
    fresh = infer_from_source(settings, stats.watch(frames), progress)
    change = SchemaChange(
        added=tuple(c for c in fresh.names if c not in current.names),
        missing=tuple(c for c in current.names if c not in fresh.names),
        type_changed=tuple(
            (c, current.column(c).dtype, fresh.column(c).dtype) for c in fresh.names if stats.changed(c)
        ),
    )
    if not (change.added or change.missing or change.type_changed):
        raise InputError(
            f"the source matches contract '{current.name}' v{current.version}; nothing to accept.",
            hint="Run `loopml ingest`.",
        )
    columns = _merge(current, fresh, stats, plan.parent is not None)
    accepted = current.model_copy(update={"version": current.version + 1, "columns": columns})
    save_contract(accepted, contracts_dir(settings.project_dir))
    return accepted, change
