"""Ingest throughput and memory: ``loopml ingest`` against plain pandas on the same CSV, same run.

Generates an N-row CSV (5,000,000 by default) with an id, a timestamp, numbers, a small category set,
free text and a few bad rows, then times, each in a fresh process so that peak RSS is its own:

- baseline: ``pandas.read_csv`` of the whole file + ``DataFrame.to_parquet``;
- loopml, first ingest: infer the contract (types, nullability, ranges, categories, unique id), then
  enforce all of it chunk by chunk, write the snapshot and the quarantine, record them in the store;
- loopml, later ingest: the same file against the saved contract (no inference pass).

Usage: python benchmarks/ingest.py [--rows N] [--workdir DIR]
The last line is ``speed_ratio_vs_pandas=<x> peak_rss_mb=<y>``: x is ``loopml ingest`` enforcing the whole
contract (the later ingest) against pandas, y loopml's larger peak RSS of the two ingests; the ratio
of the first ingest, which also infers the contract, is printed on the line before.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD_PANDAS = """
import sys, time, json, resource, pandas as pd
t = time.perf_counter()
frame = pd.read_csv(sys.argv[1])
frame.to_parquet(sys.argv[2], index=False)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(frame),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_LOOPML = """
import sys, time, json, resource
from loopml.project import Project
project = Project.open(sys.argv[1], environ={})
t = time.perf_counter()
result = project.ingest()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": result.rows_read,
                  "accepted": result.accepted, "quarantined": result.quarantined,
                  "by_rule": result.quarantine_counts, "contract_created": result.contract_created,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PROJECT = """name: bench
task: binary
target: label
id_column: id
event_time: ts
source:
  kind: csv
  path: {path}
  chunk_rows: 250000
contract:
  columns:
    amount: {{min: 0}}
"""


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    """Write the benchmark CSV in pieces (bounded memory while generating)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    step = 1_000_000
    for offset in range(0, rows, step):
        n = min(step, rows - offset)
        ids = np.arange(offset, offset + n)
        frame = pd.DataFrame(
            {
                "id": ids,
                "ts": (start + pd.to_timedelta(ids, unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
                "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
                "qty": rng.integers(1, 20, n),
                "country": rng.choice([f"country_{i}" for i in range(12)], n),
                "sku": np.char.add("sku-", rng.integers(0, 100_000, n).astype(str)),
                "label": rng.integers(0, 2, n),
            }
        )
        if offset:  # after the first piece, which fixes the contract: a few rows that break it
            bad = rng.choice(n, 50, replace=False)
            frame.loc[bad[:25], "amount"] = -1.0
            frame.loc[bad[25:], "country"] = "atlantis"
        frame.to_csv(path, mode="a", header=offset == 0, index=False)


def run(child: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", child, *args], check=True, capture_output=True, text=True)
    payload: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="loopml-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "data.csv"
    if not csv.exists():
        started = time.perf_counter()
        make_csv(csv, args.rows)
        print(
            f"generated {args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - started:.0f} s"
        )
    project = work / "project"
    project.mkdir(exist_ok=True)
    (project / "loopml.yaml").write_text(PROJECT.format(path=csv), encoding="utf-8")
    base = run(CHILD_PANDAS, str(csv), str(work / "pandas.parquet"))
    first = run(CHILD_LOOPML, str(project))
    later = run(CHILD_LOOPML, str(project))
    for name, r in (("pandas read_csv+to_parquet", base), ("loopml ingest (first: infer+enforce)", first),
                    ("loopml ingest (contract in place)", later)):  # fmt: skip
        print(f"{name:40s} {r['rows'] / r['seconds']:>12,.0f} rows/s  {r['seconds']:7.1f} s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB")  # fmt: skip
    print(f"quarantined {first['quarantined']:,} of {first['rows']:,}: {first['by_rule']}")
    pandas_rate = base["rows"] / base["seconds"]
    ratio_first = (first["rows"] / first["seconds"]) / pandas_rate
    ratio = (later["rows"] / later["seconds"]) / pandas_rate
    print(f"first ingest (inference pass included) vs pandas: {ratio_first:.2f}; "
          f"peak RSS vs pandas: {later['peak_rss_mb'] / base['peak_rss_mb']:.2f}x")  # fmt: skip
    print(
        f"speed_ratio_vs_pandas={ratio:.2f} peak_rss_mb={max(first['peak_rss_mb'], later['peak_rss_mb']):.0f}"
    )


if __name__ == "__main__":
    main()
