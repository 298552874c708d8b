"""``loopml demo fraud``: the whole loop on the fraud simulator, for real, in one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table
from sqlalchemy import func, select

from loopml.cli._common import console
from loopml.cli.demos._common import build, jsonable_records, send_all
from loopml.errors import InputError

__all__ = ["render", "run"]


def _next_day(replay: Path, event_time: str) -> pd.DataFrame:
    """The first day after the training data: traffic the model has never seen."""
    frame = pd.read_parquet(replay)
    days = pd.to_datetime(frame[event_time]).dt.normalize()
    return frame[days == days.min()].reset_index(drop=True)


def _serve_and_batch(proj: Any, day: pd.DataFrame, id_column: str) -> dict[str, Any]:
    """Score ``day`` over real HTTP and as a batch file; compare the two."""
    from loopml.serve import ServerProcess
    from loopml.store import tables

    model = proj.load_model()
    records = jsonable_records(day, [id_column, *model.input_columns])
    with ServerProcess(str(proj.settings.project_dir)) as server:
        api_scores, latencies, failed = send_all(server.url, proj.name, records, id_column)
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


def run(directory: Path) -> dict[str, Any]:
    """Generate data, ingest, train, register, serve over HTTP, score a held-out day two ways."""
    started = time.perf_counter()
    proj, ingested, outcome = build("fraud", directory)
    event_time, id_column = proj.settings.event_time, proj.settings.id_column
    if event_time is None or id_column is None:
        raise InputError(f"the demo needs id_column and event_time in {directory / 'loopml.yaml'}.")
    day = _next_day(directory / "data" / "replay.parquet", event_time)
    hold = outcome.version.metrics["holdout"]
    return {
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


def render(summary: dict[str, Any]) -> None:
    table = Table(title="loopml demo: fraud", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
