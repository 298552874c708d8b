"""Batch scoring: a file in, a file out, in chunks, through the same LoadedModel as the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.errors import InputError
from loopml.registry import LoadedModel
from loopml.sources import CsvSource, ParquetSource, Source
from loopml.store import Store, utcnow, write_predictions

__all__ = ["BatchResult", "score_file"]


@dataclass(frozen=True)
class BatchResult:
    """What a batch run did."""

    rows: int
    output: str
    model_version: int


def _source_for(path: Path) -> Source:
    if path.suffix == ".csv":
        return CsvSource(str(path))
    if path.suffix == ".parquet" or path.is_dir():
        return ParquetSource(str(path))
    raise InputError(f"input '{path}' must be a .csv or .parquet file (or a folder of Parquet files).")


def _scored(model: LoadedModel, coerced: pd.DataFrame) -> pd.DataFrame:
    outputs = model.outputs(model.score(model.features(coerced)))
    model.observe(coerced)
    out = pd.DataFrame(outputs)
    id_column = model.contract.id_column
    if id_column and id_column in coerced.columns:
        out.insert(0, id_column, coerced[id_column].to_numpy())
    out.insert(0, "prediction_id", [str(uuid.uuid4()) for _ in range(len(out))])
    out["model_version"] = model.version.version
    return out


def score_file(
    store: Store,
    model: LoadedModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = 100_000,
    log_predictions: bool = True,
    progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Score every row of ``input_path`` into ``output_path`` (.parquet or .csv), chunk by chunk."""
    source, output = _source_for(Path(input_path)), Path(output_path)
    if output.suffix not in {".parquet", ".csv"}:
        raise InputError(f"output '{output}' must end in .parquet or .csv.")
    output.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    for chunk in source.iter_batches(chunk_rows):
        coerced = model.coerce(chunk)
        scored = _scored(model, coerced)
        if log_predictions:
            _log(store, model, coerced, scored)
        if output.suffix == ".csv":
            scored.to_csv(output, mode="a" if rows else "w", header=not rows, index=False)
        else:
            table = pa.Table.from_pandas(scored, preserve_index=False)
            writer = writer or pq.ParquetWriter(output, table.schema)
            writer.write_table(table)
        rows += len(scored)
        if progress:
            progress(len(scored))
    if writer is not None:
        writer.close()
    return BatchResult(rows=rows, output=str(output), model_version=model.version.version)


def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None)
    return [
        {str(k): (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in rec.items()}
        for rec in out.to_dict(orient="records")
    ]


def _log(store: Store, model: LoadedModel, coerced: pd.DataFrame, scored: pd.DataFrame) -> None:
    now, version = utcnow(), model.version.version
    rows = [
        {
            "id": pid,
            "model_name": model.name,
            "model_version": version,
            "created_at": now,
            "origin": "batch",
            "inputs": rec,
            "score": float(score),
            "output": {"score": float(score), "label": int(label)},
        }
        for pid, rec, score, label in zip(
            scored["prediction_id"], _jsonable(coerced), scored["score"], scored["label"], strict=True
        )
    ]
    write_predictions(store.engine, rows)
