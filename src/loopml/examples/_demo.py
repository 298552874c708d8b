"""Helpers every ``loopml demo`` example shares: build a project, send records over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from loopml.errors import InputError

__all__ = ["build", "cell", "console", "err_console", "jsonable_records", "send_all"]

# The demos' own consoles: summaries for people on stdout, progress and status on stderr (so
# ``loopml demo NAME --json`` prints its one JSON line alone on stdout).
# soft_wrap: a long path or command is printed whole on one line (the terminal folds it for the
# eye), so it can be copied, and piped or captured output never breaks a path across lines.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def cell(value: Any) -> str:
    """A summary value for a table: floats to 4 decimals, text as it is (``[K]`` shown, not read as
    Rich markup)."""
    return f"{value:.4f}" if isinstance(value, float) else escape(str(value))


def send_all(
    url: str, name: str, records: list[dict[str, Any]], id_column: str
) -> tuple[dict[Any, float], list[float], int]:
    """POST each record to the predict route; returns scores by id, latencies (ms) and failures."""
    import httpx

    scores: dict[Any, float] = {}
    latencies: list[float] = []
    failed = 0
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        Progress(console=err_console, transient=True) as bar,
    ):
        task = bar.add_task("sending requests", total=len(records))
        for record in records:
            started = time.perf_counter()
            response = client.post(f"/v1/models/{name}/predict", json=record)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                scores[record[id_column]] = response.json()["predictions"][0]["score"]
            else:
                failed += 1
            bar.advance(task)
    return scores, latencies, failed


def jsonable_records(day: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    out = day[columns].copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in out.to_dict("records")
    ]


def build(
    example: str,
    directory: Path,
    configure: Callable[[Path], None] | None = None,
    **data_options: Any,
) -> tuple[Any, Any, Any]:
    """Write the example, ingest and train: returns the project, the ingest and the train outcome.

    ``configure(directory)`` may edit the project file before the first ingest; ``data_options`` go
    to the example's data generator.
    """
    from loopml.examples import write_example
    from loopml.project import Project

    if (directory / "loopml.yaml").exists():
        raise InputError(f"{directory} already holds a project; pass an empty --project directory.")
    with err_console.status("generating data ..."):
        write_example(example, directory, **data_options)
    if configure is not None:
        configure(directory)
    proj = Project.open(directory)
    with err_console.status("ingesting ..."):
        ingested = proj.ingest()
    with err_console.status("training (LightGBM) ..."):
        outcome = proj.train()
    return proj, ingested, outcome
