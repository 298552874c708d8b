"""Batch scoring: Parquet in -> Parquet out on 1M and 10M rows, against the model's in-process rows/s.

Trains the fraud example's model (30 simulated days), then for each size generates that many new
transactions (sorted by time, on the example's cards and terminals, new ids) into a Parquet file and,
each in its own subprocess so that peak memory (``ru_maxrss``) is the scoring's own:

- ``batch``: ``loopml`` batch scoring, file to file, prediction log on (``score_file``);
- ``in-process``: the same rows already in memory, in the same chunks, through the same
  ``LoadedModel`` calls (coerce, observe, features, score): the model's own speed, no I/O.

Prints one line per run and, last, ``rows_per_s_ratio=<batch/in-process at the largest size>
memory_growth=<peak RSS at the largest size / at the smallest>``. Floors (DESIGN.md section 6):
ratio >= 0.70, growth <= 1.25. Usage: ``python benchmarks/batch.py [--sizes 1000000 10000000]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 100_000


def build_project(directory: Path) -> None:
    from loopml.examples import write_example
    from loopml.project import Project

    write_example("fraud", directory, days=30)
    project = Project.open(directory, environ={})
    project.ingest()
    project.train()


def write_rows(directory: Path, rows: int, path: Path) -> None:
    """``rows`` new transactions after the snapshot, written row group by row group (bounded memory)."""
    from loopml.project import Project
    from loopml.validate import load_snapshot

    project = Project.open(directory, environ={})
    _, snap = load_snapshot(project.store, project.name)
    customers, terminals = snap["customer_id"].unique(), snap["terminal_id"].unique()
    start, first_id = snap["tx_datetime"].max() + pd.Timedelta("1h"), int(snap["transaction_id"].max()) + 1
    rng = np.random.default_rng(7)
    writer: pq.ParquetWriter | None = None
    for offset in range(0, rows, CHUNK):
        n = min(CHUNK, rows - offset)
        ids = np.arange(first_id + offset, first_id + offset + n)
        frame = pd.DataFrame(
            {
                "transaction_id": ids,
                # ~1,650 transactions a day, as in the simulator: windows see realistic histories
                "tx_datetime": start + pd.to_timedelta((ids - first_id) * 52_000, unit="ms"),
                "customer_id": rng.choice(customers, n),
                "terminal_id": rng.choice(terminals, n),
                "tx_amount": np.round(rng.gamma(2.0, 30.0, n), 2),
            }
        )
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=CHUNK)
    assert writer is not None
    writer.close()


def run_one(mode: str, directory: Path, path: Path, output: Path) -> dict[str, float]:
    """One measurement in this (fresh) process."""
    from loopml.batch import score_file
    from loopml.batch.score import prepare
    from loopml.project import Project

    project = Project.open(directory, environ={})
    model = project.models.load()
    rows = pq.ParquetFile(path).metadata.num_rows
    if mode == "batch":
        start = time.perf_counter()
        score_file(project.store, model, path, output, chunk_rows=CHUNK)
        seconds = time.perf_counter() - start
    else:  # in-process: the rows already in memory, same chunks, same LoadedModel calls, no I/O
        chunks = [b.to_pandas() for b in pq.ParquetFile(path).iter_batches(CHUNK)]
        start = time.perf_counter()
        for chunk in chunks:
            _, features = prepare(model, chunk)
            model.outputs(model.score(features))
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mb": peak_mb}


def measure(mode: str, directory: Path, path: Path, output: Path) -> dict[str, float]:
    code = [sys.executable, __file__, "--child", mode, str(directory), str(path), str(output)]
    done = subprocess.run(code, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, directory, path, output = args.child
        print(json.dumps(run_one(mode, Path(directory), Path(path), Path(output))))
        return
    with tempfile.TemporaryDirectory(prefix="loopml-bench-batch-") as tmp:
        root = Path(tmp)
        build_project(root / "project")
        results: dict[int, dict[str, dict[str, float]]] = {}
        for size in args.sizes:
            path = root / f"rows-{size}.parquet"
            write_rows(root / "project", size, path)
            results[size] = {}
            for mode in ("in-process", "batch"):
                # a fresh store per run: the prediction log of one run must not feed the next one's history
                project = root / f"project-{size}-{mode}"
                subprocess.run(["cp", "-r", str(root / "project"), str(project)], check=True)
                r = measure(mode, project, path, root / f"out-{size}-{mode}.parquet")
                results[size][mode] = r
                print(
                    f"{mode:>10} rows={size:>10,} {r['rows_per_s']:>9,.0f} rows/s "
                    f"{r['seconds']:7.1f} s peak_rss={r['peak_rss_mb']:7.0f} MiB",
                    flush=True,
                )
            path.unlink()
        small, large = min(args.sizes), max(args.sizes)
        ratio = results[large]["batch"]["rows_per_s"] / results[large]["in-process"]["rows_per_s"]
        growth = results[large]["batch"]["peak_rss_mb"] / results[small]["batch"]["peak_rss_mb"]
        print(f"rows_per_s_ratio={ratio:.3f} memory_growth={growth:.3f}")


if __name__ == "__main__":
    main()
