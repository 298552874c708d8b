"""Training runs: each fit is recorded with its data set version, parameters, metrics or error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, update

from loopml.store import tables, utcnow

__all__ = ["finish_run", "start_run"]


def start_run(engine: Engine, model_name: str, dataset_version_id: int | None, params: dict[str, Any]) -> int:
    """Record a run as ``running``; returns its id."""
    tr = tables.training_runs
    row = {
        "model_name": model_name,
        "dataset_version_id": dataset_version_id,
        "status": "running",
        "params": params,
        "started_at": utcnow(),
    }
    with engine.begin() as conn:
        return int(conn.execute(insert(tr).returning(tr.c.id), row).scalar_one())


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    params: dict[str, Any] | None = None,
) -> None:
    """Mark a run ``finished`` with its metrics, or ``failed`` with its error."""
    values: dict[str, Any] = {
        "status": "failed" if error else "finished",
        "metrics": metrics,
        "error": error,
        "finished_at": utcnow(),
    }
    if params is not None:
        values["params"] = params
    with engine.begin() as conn:
        conn.execute(update(tables.training_runs).where(tables.training_runs.c.id == run_id).values(**values))
