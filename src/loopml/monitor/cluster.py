"""Drift over partitioned Parquet on a Dask cluster, in memory bounded by one batch per worker.

Drift needs only the counts of the window's rows in the reference profile's bins, and counts add
up (:func:`~loopml.validate.profile.combine_counts`). So each task reads one Parquet file on a
worker, ``batch_rows`` rows at a time and only the profiled columns, and returns its counts (a few
numbers per column); the client adds them up as tasks finish and computes the statistics once. No
partition is ever concatenated with another, or sent to the client, so the data can be many times
larger than the workers' memory. The result equals :func:`~loopml.monitor.drift.compare` on the
whole data concatenated, exactly (the counts are integers).
"""

from __future__ import annotations

from typing import Any

from loopml._dask import dask_client
from loopml.errors import InputError
from loopml.monitor.drift import PSI_ALERT, DriftResult, compare_counts
from loopml.validate.profile import DriftCounts, Profile, combine_counts, profile_counts

__all__ = ["drift_counts_dask", "drift_dask", "parquet_parts"]


def parquet_parts(path: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    """The fsspec filesystem of ``path`` (a file, a folder or any fsspec URL) and its Parquet files,
    sorted; a folder is searched recursively (Hive-style ``key=value/`` folders included)."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(str(path), **(storage_options or {}))
    if fs.isfile(root):
        return fs, [root]
    files = sorted(
        f for f in fs.find(root) if f.endswith(".parquet") and not f.split("/")[-1].startswith(".")
    )
    if not files:
        raise InputError(f"no .parquet files under '{path}'; point to a Parquet file or a folder of them.")
    return fs, files


def part_counts(fs: Any, file: str, profile: Profile, batch_rows: int) -> DriftCounts:
    """The counts of one Parquet file's rows in ``profile``'s bins, read ``batch_rows`` at a time."""
    from loopml.sources.files import stream_parquet

    with fs.open(file, "rb") as handle:
        parquet = stream_parquet(handle)
        columns = [c for c in profile.columns if c in parquet.schema_arrow.names]
        parts = [
            profile_counts(batch.to_pandas(), profile)
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns)
        ]
    return combine_counts(parts) if parts else DriftCounts(0, {})


def drift_counts_dask(
    profile: Profile,
    path: str,
    *,
    address: Any = None,
    batch_rows: int = 100_000,
    storage_options: dict[str, Any] | None = None,
) -> DriftCounts:
    """The counts of every row of the Parquet data at ``path`` in ``profile``'s bins, one task per file.

    ``address``: a scheduler address, ``"local"``/``None`` for a new ``LocalCluster``, or an open
    ``distributed.Client``. The workers read the files themselves, so ``path`` must be reachable from
    them (a shared disk, or an object-store URL with ``storage_options``).
    """
    if batch_rows < 1:
        raise InputError(f"batch_rows must be at least 1; got {batch_rows}.")
    fs, files = parquet_parts(path, storage_options)
    with dask_client(address, "drift on Dask") as client:
        from distributed import as_completed

        remote = client.scatter(profile, broadcast=True, hash=False)
        futures = [client.submit(part_counts, fs, f, remote, batch_rows, pure=False) for f in files]
        total = DriftCounts(0, {})
        for future in as_completed(futures):
            total = combine_counts([total, future.result()])
            future.release()
    return total


def drift_dask(
    profile: Profile,
    path: str,
    *,
    address: Any = None,
    batch_rows: int = 100_000,
    storage_options: dict[str, Any] | None = None,
    psi_threshold: float = PSI_ALERT,
    js_threshold: float = 0.1,
    alpha: float = 0.05,
    min_rows: int = 100,
) -> list[DriftResult]:
    """:func:`~loopml.monitor.drift.compare` of ``profile`` with all the Parquet data at ``path``,
    computed over its files on a Dask cluster (see :func:`drift_counts_dask`), most drifted first."""
    counts = drift_counts_dask(
        profile, path, address=address, batch_rows=batch_rows, storage_options=storage_options
    )
    return compare_counts(
        profile,
        counts,
        psi_threshold=psi_threshold,
        js_threshold=js_threshold,
        alpha=alpha,
        min_rows=min_rows,
    )
