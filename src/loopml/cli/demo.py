"""``loopml demo fraud``: the whole thin loop, for real, in one command."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, select

from loopml.cli._common import JsonOpt, console, emit, err_console, handle_errors
from loopml.errors import InputError

__all__ = ["demo"]


def _next_day(replay: Path, event_time: str) -> pd.DataFrame:
    """The first day after the training data: traffic the model has never seen."""
    frame = pd.read_parquet(replay)
    days = pd.to_datetime(frame[event_time]).dt.normalize()
    return frame[days == days.min()].reset_index(drop=True)


def _send_all(
    url: str, name: str, records: list[dict[str, Any]]
) -> tuple[dict[Any, float], list[float], int]:
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
                scores[record["transaction_id"]] = response.json()["predictions"][0]["score"]
            else:
                failed += 1
            bar.advance(task)
    return scores, latencies, failed


def _jsonable_records(day: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    out = day[columns].copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in out.to_dict("records")
    ]


def _build(example: str, directory: Path) -> tuple[Any, Any, Any]:
    """Write the example, ingest and train: returns the project, the ingest and the train outcome."""
    from loopml.examples import write_example
    from loopml.project import Project

    if (directory / "loopml.yaml").exists():
        raise InputError(f"{directory} already holds a project; pass an empty --project directory.")
    with err_console.status("generating data ..."):
        write_example(example, directory)
    proj = Project.open(directory)
    with err_console.status("ingesting ..."):
        ingested = proj.ingest()
    with err_console.status("training (LightGBM) ..."):
        outcome = proj.train()
    return proj, ingested, outcome


def _serve_and_batch(proj: Any, day: pd.DataFrame, id_column: str) -> dict[str, Any]:
    """Score ``day`` over real HTTP and as a batch file; compare the two."""
    from loopml.serve import ServerProcess
    from loopml.store import tables

    model = proj.load_model()
    records = _jsonable_records(day, [id_column, *model.input_columns])
    with ServerProcess(str(proj.settings.project_dir)) as server:
        api_scores, latencies, failed = _send_all(server.url, proj.name, records)
    folder = proj.settings.project_dir / "demo"
    folder.mkdir(exist_ok=True)
    day.to_parquet(folder / "day.parquet", index=False)
    batch = proj.predict_file(folder / "day.parquet", folder / "day_scored.parquet")
    scored = pd.read_parquet(folder / "day_scored.parquet")
    api = np.array([api_scores.get(t, np.nan) for t in scored[id_column]])
    predictions = tables.predictions
    with proj.store.engine.connect() as conn:
        logged = conn.execute(
            select(func.count()).select_from(predictions).where(predictions.c.origin == "api")
        ).scalar_one()
    return {
        "requests": len(records),
        "failed_requests": failed,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "predictions_logged": int(logged),
        "batch_rows": batch.rows,
        "api_equals_batch": bool(np.array_equal(api, scored["score"].to_numpy())),
    }


@handle_errors
def demo(
    example: Annotated[str, typer.Argument(help="Which example to run: fraud.")] = "fraud",
    project: Annotated[
        Path | None,
        typer.Option(
            "--project", "-p", help="Empty directory to build the demo in (default: a new temp dir)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate data, ingest, train, register, serve over HTTP, score a held-out day two ways, report.

    Runs in about a minute on 2 cores. Example: loopml demo fraud --json
    """
    started = time.perf_counter()
    directory = project or Path(tempfile.mkdtemp(prefix=f"loopml-demo-{example}-"))
    proj, ingested, outcome = _build(example, directory)
    event_time, id_column = proj.settings.event_time, proj.settings.id_column
    if event_time is None or id_column is None:
        raise InputError(f"the demo needs id_column and event_time in {directory / 'loopml.yaml'}.")
    day = _next_day(directory / "data" / "replay.parquet", event_time)
    hold = outcome.version.metrics["holdout"]
    summary = {
        "project_dir": str(directory),
        "rows": ingested.dataset.rows,
        "rows_quarantined": ingested.dataset.rows_quarantined,
        "model_version": outcome.version.version,
        "holdout_roc_auc": hold["roc_auc"],
        "holdout_average_precision": hold["average_precision"],
        "baseline_average_precision": outcome.version.metrics["baseline"]["average_precision"],
        "day": str(pd.Timestamp(day[event_time].iloc[0]).date()),
        **_serve_and_batch(proj, day, id_column),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    emit(summary, as_json, lambda: _render(summary))


def _render(summary: dict[str, Any]) -> None:
    table = Table(title="loopml demo: fraud", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
