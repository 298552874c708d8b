"""Drift: loopml's monitor against Evidently's data drift preset, on the same 1M x 25 data.

In one run: a reference and a current table (``--rows`` each, default 1,000,000; 20 numeric and 5
categorical columns, with realistic shifts in some of them: a mean shift, a scale change, a new mode,
a variance change, category shares that move) are written once to Parquet; then, each tool in its
own subprocess (so peak RSS is per tool), from the same files:

1. loopml: read the reference and build its profile (what training stores), read the current table,
   count it in the profile's bins and compare (PSI, KS, Jensen-Shannon for numeric columns; chi-square,
   Jensen-Shannon, PSI for categorical ones; Benjamini-Hochberg across columns). The counts of 8
   chunks, combined, are checked to equal those of one pass (drift is mergeable across partitions).
2. Evidently (0.7, in its own virtual environment ``benchmarks/.venv-evidently``, created on first
   use; never a loopml dependency, pinned to pandas<3 because it does not import with pandas 3):
   ``DataDriftPreset(num_method="ks", cat_method="chisquare")`` plus ``ValueDrift`` with ``psi`` and
   ``jensenshannon`` for every column, so it computes the same set of statistics.

Times are from reading the Parquet files to the last statistic (interpreter start-up and imports
excluded for both). Statistics are compared where the two definitions are the same: on categorical
columns (same categories, no missing values) the chi-square p-value, the Jensen-Shannon distance
(Evidently uses natural logarithms, loopml base 2: loopml's value is multiplied by sqrt(ln 2)) and PSI
(same empty-bin rule). Numeric columns are not compared: Evidently runs KS on the raw values and bins
PSI and Jensen-Shannon on the reference and current data combined (Sturges' rule), which no stored
reference profile can reproduce; loopml bins on the reference's deciles. Their drift verdicts are
printed side by side instead.

The last line is ``speedup=<x> max_abs_diff=<y>`` (Evidently's seconds over loopml's, end to end).

Usage: ``.venv/bin/python benchmarks/drift.py [--rows 1000000] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_PINS = ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"]
NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CATEGORIES = {"c0": 5, "c1": 8, "c2": 3, "c3": 12, "c4": 20}


def _numeric(rng: np.random.Generator, i: int, n: int, current: bool) -> np.ndarray:
    """Column ``n{i}``: a family of distributions; columns 0-4 shift in the current table."""
    kind = i % 5
    shift = current and i < 5
    if kind == 0:
        x = rng.normal(100 + (7.5 if shift else 0), 15, n)
    elif kind == 1:
        x = rng.lognormal(3, 0.5, n) * (1.1 if shift else 1.0)
    elif kind == 2:
        x = rng.exponential(2.0, n)
        if shift:  # a new mode: a tenth of the values near 12
            mode = rng.random(n) < 0.1
            x[mode] = rng.normal(12, 1, int(mode.sum()))
    elif kind == 3:
        x = rng.uniform(0, 1, n) ** (0.8 if shift else 1.0)
    else:
        x = rng.normal(0, 1.3 if shift else 1.0, n) + rng.choice([-2.0, 2.0], n)
    if i in (5, 6):
        x[rng.random(n) < 0.01] = np.nan
    return x


def _categorical(rng: np.random.Generator, name: str, n: int, current: bool) -> np.ndarray:
    k = CATEGORIES[name]
    weights = 1.0 / np.arange(1, k + 1)  # Zipf-like shares
    if current and name in ("c0", "c1"):
        weights = weights[::-1] ** 0.5 * weights if name == "c0" else weights * np.linspace(1.3, 0.7, k)
    labels = np.array([f"{name}_{j}" for j in range(k)], dtype=object)
    return labels[rng.choice(k, n, p=weights / weights.sum())]


def write_data(work: Path, rows: int, seed: int) -> None:
    """``reference.parquet`` and ``current.parquet`` in ``work``."""
    for name, current in (("reference", False), ("current", True)):
        rng = np.random.default_rng(seed + int(current))
        frame = pd.DataFrame({c: _numeric(rng, i, rows, current) for i, c in enumerate(NUMERIC)})
        for c in CATEGORICAL:
            frame[c] = _categorical(rng, c, rows, current)
        frame.to_parquet(work / f"{name}.parquet", index=False)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunks(frame: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]


def loopml_worker(work: Path) -> dict[str, Any]:
    """Profile the reference, then compare the current table with it; returns times and statistics."""
    from loopml.monitor import build_profile, combine_counts, compare_counts, profile_counts

    started, cpu = time.perf_counter(), time.process_time()
    reference = pd.read_parquet(work / "reference.parquet")
    profile = build_profile(reference, NUMERIC, CATEGORICAL)
    del reference
    profiled = time.perf_counter()
    current = pd.read_parquet(work / "current.parquet")
    counts = profile_counts(current, profile)
    results = compare_counts(profile, counts)
    finished, cpu = time.perf_counter(), time.process_time() - cpu
    chunks = combine_counts(profile_counts(part, profile) for part in _chunks(current, 8))
    assert chunks.rows == counts.rows
    assert all(np.array_equal(chunks.counts[c], counts.counts[c]) for c in counts.counts)
    return {
        "seconds": finished - started,
        "cpu_seconds": cpu,
        "seconds_profile": profiled - started,
        "seconds_compare": finished - profiled,
        "peak_mb": _peak_mb(),
        "stats": {
            r.column: {"psi": r.psi, "js": r.js, "statistic": r.statistic, "p_value": r.p_value}
            | {"drifted": r.drifted}
            for r in results
        },
    }


def evidently_worker(work: Path) -> dict[str, Any]:
    """Evidently's data drift preset plus PSI and Jensen-Shannon per column, on the same files."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    started, cpu = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    reference = Dataset.from_pandas(pd.read_parquet(work / "reference.parquet"), data_definition=definition)
    current = Dataset.from_pandas(pd.read_parquet(work / "current.parquet"), data_definition=definition)
    extra = [ValueDrift(column=c, method=m) for m in ("psi", "jensenshannon") for c in NUMERIC + CATEGORICAL]
    report = Report([DataDriftPreset(num_method="ks", cat_method="chisquare"), *extra])
    snapshot = report.run(current_data=current, reference_data=reference)
    finished, cpu = time.perf_counter(), time.process_time() - cpu
    stats: dict[str, dict[str, float]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            stats.setdefault(config["column"], {})[config["method"]] = float(metric["value"])
    return {"seconds": finished - started, "cpu_seconds": cpu, "peak_mb": _peak_mb(), "stats": stats}


def _evidently_python() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    check = [str(python), "-c", "import evidently"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        print(f"creating {EVIDENTLY_VENV} ({', '.join(EVIDENTLY_PINS)}; first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *EVIDENTLY_PINS], check=True)
    return python


def _run_worker(python: Path, tool: str, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run([str(python), __file__, "--worker", tool, str(work)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: the {tool} worker failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def compare_stats(ours: dict[str, Any], theirs: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """``(column, statistic, loopml, evidently)`` for every statistic both define the same way."""
    to_natural_log = math.sqrt(math.log(2))
    pairs = []
    for c in CATEGORICAL:
        mine, other = ours[c], theirs[c]
        pairs.append((c, "chisquare p-value", mine["p_value"], other["chisquare"]))
        pairs.append((c, "jensenshannon", mine["js"] * to_natural_log, other["jensenshannon"]))
        pairs.append((c, "psi", mine["psi"], other["psi"]))
    return pairs


def _print_numeric(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    print("numeric columns (not compared: different definitions; verdicts side by side)")
    print(
        f"  {'column':<7} {'loopml PSI':>10} {'KS D':>7} {'drifted':>8} | {'Evidently KS p':>14} {'PSI':>8}"
    )
    for c in NUMERIC:
        mine, other = ours[c], theirs[c]
        print(
            f"  {c:<7} {mine['psi']:>10.4f} {mine['statistic']:>7.4f} {'yes' if mine['drifted'] else '':>8} "
            f"| {other['ks']:>14.3g} {other['psi']:>8.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per table (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (default 0)")
    parser.add_argument("--keep", type=Path, default=None, help="write the Parquet files here and keep them")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        tool, work = args.worker
        run = loopml_worker if tool == "loopml" else evidently_worker
        print(json.dumps(run(Path(work))))
        return
    python = _evidently_python()
    work = Path(args.keep or tempfile.mkdtemp(prefix="loopml-bench-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"writing {args.rows:,} x 25 reference and current tables to {work} ...", flush=True)
    write_data(work, args.rows, args.seed)
    ours = _run_worker(Path(sys.executable), "loopml", work)
    theirs = _run_worker(python, "evidently", work)
    print(f"{'tool':<10} {'seconds':>8} {'cpu s':>8} {'process s':>9} {'peak MB':>8}")
    for label, r in (("loopml", ours), ("evidently", theirs)):
        print(
            f"{label:<10} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f} {r['process_seconds']:>9.2f} "
            f"{r['peak_mb']:>8.0f}"
        )
    print(f"cpu-time ratio (evidently / loopml): {theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}")
    print(
        f"loopml: {ours['seconds_profile']:.2f} s to read the reference and build its profile (training), "
        f"{ours['seconds_compare']:.2f} s to read and compare the current table (monitoring)"
    )
    pairs = compare_stats(ours["stats"], theirs["stats"])
    print(
        f"compared ({len(pairs)} values): chisquare p-value, jensenshannon, psi on {', '.join(CATEGORICAL)}"
    )
    for column, stat, mine, other in pairs:
        print(
            f"  {column:<4} {stat:<18} loopml {mine:.10g}  evidently {other:.10g}  "
            f"diff {abs(mine - other):.2e}"
        )
    _print_numeric(ours["stats"], theirs["stats"])
    drifted = sorted(c for c, s in ours["stats"].items() if s["drifted"])
    print(f"loopml drifted columns: {', '.join(drifted) or 'none'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    max_diff = max(abs(mine - other) for _, _, mine, other in pairs)
    print(f"speedup={theirs['seconds'] / ours['seconds']:.1f} max_abs_diff={max_diff:.3g}")


if __name__ == "__main__":
    main()
