"""Batch scoring on a Dask cluster: a Parquet file or folder in, a folder of Parquet partitions out.

The work is split where it can be split exactly. Entity window features depend on every earlier event,
so they cannot be computed by partitions that do not see each other: the client streams the input
chunk by chunk in order through :func:`~loopml.batch.score.prepare` (coerce, add to the history,
compute features), exactly as the local batch does. The model itself, the expensive part, runs on
the workers: each task gets one chunk's features and writes ``part-NNNNN.parquet``. The prediction
ids are made on the client, and the client writes the prediction log once a partition has been
written, so a task that Dask retries rewrites the same file with the same ids and logs nothing twice.
At most ``2 x workers`` chunks are in flight, so memory stays bounded however large the input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml._dask import LOCAL, dask_client, worker_count
from loopml.batch.quarantine import Quarantine
from loopml.batch.score import (
    BatchResult,
    SequenceCarry,
    assemble,
    batch_result,
    id_columns,
    new_ids,
    prepare,
    write_log,
)
from loopml.errors import InputError
from loopml.scoring import LoadedModel
from loopml.sources import ParquetSource
from loopml.store import OnWrite, Store
from loopml.validate import ScoringPolicy

__all__ = ["LOCAL", "score_file_dask"]


def score_partition(
    model: LoadedModel,
    features: pd.DataFrame,
    ids: pd.DataFrame,
    path: str,
    skip: int = 0,
    explain: int | None = None,
) -> np.ndarray:
    """Score one chunk's features on a worker and write its Parquet partition; returns the scores.

    ``skip``: leading context rows (a :class:`~loopml.batch.score.SequenceCarry`'s), scored, not kept;
    ``explain`` (a top k): with each row's feature contributions as ``explain_*`` columns.
    """
    columns: dict[str, list[Any]] = {}
    if explain is None:
        scores = model.score(features)[skip:]
    else:
        scores, explained = model.score_explained(features, explain)
        scores, columns = scores[skip:], model.explainer.columns(explained[skip:], explain)
    scored = assemble(model, ids.drop(columns="prediction_id"), scores, list(ids["prediction_id"]))
    if columns:
        scored = scored.assign(**columns)
    tmp = f"{path}.tmp"
    pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), tmp)
    Path(tmp).replace(path)  # atomic: a retried task overwrites a whole file, never half of one
    return scores


def _output_dir(output_path: str | Path) -> Path:
    output = Path(output_path)
    if output.suffix == ".csv" or (output.exists() and not output.is_dir()):
        raise InputError(f"output '{output}' must be a folder: Dask writes partitioned Parquet.")
    if output.exists() and any(output.glob("part-*.parquet")):
        raise InputError(f"output folder '{output}' already holds part-*.parquet files; choose a new one.")
    output.mkdir(parents=True, exist_ok=True)
    return output


def score_file_dask(
    store: Store,
    model: LoadedModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    address: Any = None,
    chunk_rows: int = 100_000,
    log_predictions: bool = True,
    progress: Callable[[int], None] | None = None,
    on_write: OnWrite | None = None,
    policy: ScoringPolicy | None = None,
    explain: int | None = None,
) -> BatchResult:
    """Score a Parquet file (or folder) into ``output_path/part-NNNNN.parquet`` on a Dask cluster
    (``explain``, a top k: with each row's feature contributions, as :func:`~loopml.batch.score_file`).

    ``address`` is a scheduler address (``tcp://host:8786``), ``None``/``"local"`` for a
    ``LocalCluster`` of one single-threaded worker process per core, or an open ``distributed.Client``.
    The output folder must be readable and writable by the workers (a shared disk on a real
    cluster). The scores equal :func:`~loopml.batch.score_file`'s exactly, row by row, and rows that
    break the contract go to ``<output_path>.quarantine.parquet`` beside the folder, as there.
    """
    source = ParquetSource(str(input_path))
    output = _output_dir(output_path)
    rows, parts = 0, 0
    with (
        Quarantine(model, policy, output) as quarantine,
        dask_client(address, "batch scoring on Dask") as client,
    ):
        remote = client.scatter(LoadedModel(model.version, model.pipeline), broadcast=True, hash=False)
        limit = 2 * worker_count(client)
        pending: deque[tuple[Any, pd.DataFrame, pd.DataFrame]] = deque()
        carry = SequenceCarry.for_model(model)  # sequence windows: each unit's earlier rows go along
        for chunk in source.iter_batches(chunk_rows):
            kept, coerced = quarantine.split(chunk)
            if progress and len(kept) < len(chunk):
                progress(len(chunk) - len(kept))
            if not len(kept):
                continue
            coerced, features = prepare(model, kept, coerced)
            features, skip = carry.with_context(features) if carry is not None else (features, 0)
            ids = id_columns(model, kept)
            ids.insert(0, "prediction_id", new_ids(len(ids)))
            path = str(output / f"part-{parts:05d}.parquet")
            future = client.submit(
                score_partition, remote, features, ids.copy(), path, skip, explain, pure=False
            )
            pending.append((future, coerced, ids))
            parts += 1
            while len(pending) >= limit:
                rows += _finish(store, model, *pending.popleft(), log_predictions, progress, on_write)
        while pending:
            rows += _finish(store, model, *pending.popleft(), log_predictions, progress, on_write)
    return batch_result(model, rows, str(output), quarantine, partitions=parts)


def _finish(
    store: Store,
    model: LoadedModel,
    future: Any,
    coerced: pd.DataFrame,
    ids: pd.DataFrame,
    log: bool,
    progress: Callable[[int], None] | None,
    on_write: OnWrite | None = None,
) -> int:
    scores: np.ndarray = future.result()
    if log:
        scored = assemble(model, ids.drop(columns="prediction_id"), scores, list(ids["prediction_id"]))
        write_log(store, model, coerced, scored, on_write=on_write)
    if progress:
        progress(len(scores))
    return len(scores)
