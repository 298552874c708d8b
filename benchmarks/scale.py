"""Batch scoring and drift on a Dask LocalCluster of 1 and 2 workers, on data larger than a worker.

Trains a LightGBM model (loopml project, 12 input columns) on a small sample, then generates the
data once (``--data DIR``, reused on later runs) as partitioned Parquet: ``--rows`` rows in files of
``--part-rows``. Each measurement gets a fresh ``LocalCluster`` of worker *processes*, one thread
each, with ``--memory-limit`` per worker, warmed up (imports) before the clock starts:

- ``batch``: :func:`loopml.batch.score_file_dask` over the whole data, prediction log off; the
  client streams the input and prepares features, the workers run the model and write the parts;
- ``drift``: :func:`loopml.monitor.cluster.drift_dask` against the model's reference profile; the
  workers read the files themselves, ``--batch-rows`` rows at a time.

Each step runs with 1, 2, 2 then 1 workers, so that a machine whose speed drifts evenly during the
run favours neither. Per run: rows/s and each worker's peak RSS (``VmHWM`` of the worker process,
Linux). Then each step's speed-up from 1 to 2 workers (the seconds of its two 1-worker runs over
those of its two 2-worker runs) and, last, ``scaling_2_workers=<x>``: the same for the whole
workload (batch + drift). With N cores the ratio is bounded by N, and the batch client takes a core
of its own. Usage: ``python benchmarks/scale.py [--rows 18000000] [--memory-limit 600MB]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CATEGORIES = {"region": ["north", "south", "east", "west"], "channel": ["web", "pos", "app"]}
NUMERIC = [f"x{i}" for i in range(8)]
ORDER = (1, 2, 2, 1)  # worker counts, in the order they run for each step


def synthetic(rows: int, seed: int, start_id: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Rows of 8 numbers, 2 categories, an id, an event time and a 0/1 target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(shift, 1.0, (rows, len(NUMERIC))), columns=NUMERIC)
    for name, values in CATEGORIES.items():
        frame[name] = rng.choice(values, rows)
    logit = frame["x0"] - 0.8 * frame["x1"] + 0.5 * frame["x2"] * frame["x3"] + (frame["region"] == "east")
    frame.insert(0, "row_id", np.arange(start_id, start_id + rows))
    frame["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows) * 1_000, unit="ms")
    frame["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def build_project(directory: Path) -> Any:
    from loopml.project import Project

    directory.mkdir(parents=True, exist_ok=True)
    synthetic(20_000, seed=0).to_parquet(directory / "train.parquet", index=False)
    config = {
        "name": "scale",
        "task": "binary",
        "source": {"kind": "parquet", "path": "train.parquet"},
        "target": "y",
        "id_column": "row_id",
        "event_time": "ts",
        "train": {"model": "lightgbm", "params": {"n_estimators": 100}, "bootstrap": 0, "report": False},
    }
    (directory / "loopml.yaml").write_text(json.dumps(config), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    project.train()
    return project


def generate(folder: Path, rows: int, part_rows: int) -> None:
    """The data, once: a marker file records what was generated, so a later run reuses it."""
    marker = folder / "_generated.json"
    wanted = {"rows": rows, "part_rows": part_rows}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, offset in enumerate(range(0, rows, part_rows)):
        n = min(part_rows, rows - offset)
        part = synthetic(n, seed=100 + i, start_id=10**9 + offset, shift=0.1).drop(columns="y")
        part.to_parquet(folder / f"part-{i:05d}.parquet", index=False, row_group_size=100_000)
    marker.write_text(json.dumps(wanted))


def _peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss`` it is not inherited across fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _warm_up() -> None:
    """Import what the tasks need on a worker, so that the clock measures work, not imports."""
    import importlib

    for name in ("lightgbm", "sklearn.compose", "loopml.batch.cluster", "loopml.monitor.cluster"):
        importlib.import_module(name)


def measure(step: str, workers: int, args: argparse.Namespace, project: Any, out: Path) -> dict[str, Any]:
    """One step on a fresh cluster of ``workers`` processes: seconds, rows/s, each worker's peak RSS."""
    import distributed

    from loopml.batch import score_file_dask
    from loopml.monitor.cluster import drift_dask
    from loopml.monitor.run import reference_profile

    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_warm_up)
        model = project.models.load()
        started = time.perf_counter()
        if step == "batch":
            target = out / f"batch-{workers}"
            shutil.rmtree(target, ignore_errors=True)
            result = score_file_dask(
                project.store, model, args.data, target, address=client, log_predictions=False
            )
            rows = result.rows
        else:
            profile = reference_profile(project.store, model.version)
            assert profile is not None
            results = drift_dask(profile, str(args.data), address=client, batch_rows=args.batch_rows)
            rows = results[0].rows
        seconds = time.perf_counter() - started
        peaks = sorted(client.run(_peak_rss_mb).values())
    return {"step": step, "workers": workers, "rows": rows, "seconds": seconds, "peak_worker_mb": peaks}


def main() -> None:
    warnings.filterwarnings("ignore", message="Sending large graph")  # each chunk's features go in its task
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=18_000_000)
    parser.add_argument("--part-rows", type=int, default=500_000)
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows a drift task reads at once")
    parser.add_argument("--memory-limit", default="600MB", help="per worker (Dask's memory_limit)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "loopml-scale-data")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loopml-scale-"))
    try:
        project = build_project(work / "project")
        started = time.perf_counter()
        generate(args.data, args.rows, args.part_rows)
        files = sorted(args.data.glob("*.parquet"))
        disk_mb = sum(f.stat().st_size for f in files) / 2**20
        memory_mb = (
            pd.read_parquet(files[0]).memory_usage(deep=True).sum() / 2**20 * args.rows / args.part_rows
        )
        limit_mb = distributed_bytes(args.memory_limit) / 2**20
        print(
            f"data rows={args.rows} files={len(files)} on_disk_mb={disk_mb:.0f} in_memory_mb={memory_mb:.0f} "
            f"({memory_mb / limit_mb:.1f}x the {limit_mb:.0f} MB worker limit) "
            f"ready_s={time.perf_counter() - started:.0f}",
            flush=True,
        )
        seconds: dict[tuple[str, int], float] = {}
        for step in ("batch", "drift"):
            for workers in ORDER:  # 1, 2, 2, 1: a machine that speeds up or slows down evenly cancels out
                run = measure(step, workers, args, project, work)
                seconds[step, workers] = seconds.get((step, workers), 0.0) + run["seconds"]
                peaks = " ".join(f"{p:.0f}" for p in run["peak_worker_mb"])
                print(
                    f"{step} workers={workers} rows={run['rows']} seconds={run['seconds']:.1f} "
                    f"rows_per_s={run['rows'] / run['seconds']:.0f} peak_worker_mb=[{peaks}] "
                    f"(limit {limit_mb:.0f})",
                    flush=True,
                )
        for step in ("batch", "drift"):
            print(f"{step}_scaling_2_workers={seconds[step, 1] / seconds[step, 2]:.2f}")
        one = seconds["batch", 1] + seconds["drift", 1]
        two = seconds["batch", 2] + seconds["drift", 2]
        print(f"scaling_2_workers={one / two:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def distributed_bytes(text: str) -> float:
    from dask.utils import parse_bytes

    return float(parse_bytes(text))


if __name__ == "__main__":
    main()
