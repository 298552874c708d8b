"""Start-up: the wall time of ``import loopml`` and of ``loopml --help``, each in fresh processes.

Each figure is the median of ``--runs`` (default 5) fresh processes started with ``subprocess`` from
this interpreter's virtual environment, timed from the start of the process to its exit:

- ``python -c pass``: the interpreter alone, for reference (not part of the last line);
- ``python -c "import loopml"``: the package (targets: under 0.3 s on a 2-core machine);
- ``loopml --help``: the installed console script next to ``sys.executable`` (under 0.6 s).

One warm-up run of each comes first and is not counted, so that every timed run finds the files in
the page cache. Each run's wall seconds are printed, then their median and the median CPU seconds
(user + system, from ``getrusage`` of the children): on a busy 2-core machine wall time grows with
the load, CPU time much less, so a wall figure over target with a CPU figure well under it points at
the machine, not at loopml. To see what a slow start spends its time on:
``python -X importtime -c "import loopml"`` and ``python -X importtime -m loopml --help``.

Usage: ``.venv/bin/python benchmarks/startup.py [--runs 5]``
The last line is ``import_s=<x> help_s=<y>``: the medians, in seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONSOLE_SCRIPT = Path(sys.executable).parent / "loopml"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import loopml": [sys.executable, "-c", "import loopml"],
    "loopml --help": [str(CONSOLE_SCRIPT), "--help"],
}


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds from starting ``command`` to its exit (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not CONSOLE_SCRIPT.exists():
        sys.exit(f"{CONSOLE_SCRIPT} not found: install loopml in this environment (pip install -e .)")
    medians: dict[str, float] = {}
    runs_header = " ".join(f"{f'run {i + 1}':>7s}" for i in range(args.runs))
    print(f"{'wall seconds':16s} {runs_header} {'median':>8s} {'cpu med':>8s}")
    for name, command in COMMANDS.items():
        timed(command)  # warm-up: not counted
        walls, cpus = zip(*(timed(command) for _ in range(args.runs)), strict=True)
        medians[name] = statistics.median(walls)
        row = " ".join(f"{w:7.3f}" for w in walls)
        print(f"{name:16s} {row} {medians[name]:8.3f} {statistics.median(cpus):8.3f}")
    print(
        f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; medians of {args.runs} fresh processes"
    )
    print(f"import_s={medians['import loopml']:.3f} help_s={medians['loopml --help']:.3f}")


if __name__ == "__main__":
    main()
