"""The project commands: init, ingest, train, predict, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, err_console, handle_errors, open_project

__all__ = ["register"]


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Directory for the new project (created if missing).")],
    example: Annotated[str, typer.Option(help="Example to start from: fraud.")] = "fraud",
    as_json: JsonOpt = False,
) -> None:
    """Create a project: a commented loopml.yaml and the example's data.

    Example: loopml init my-fraud --example fraud && cd my-fraud && loopml ingest && loopml train
    """
    from loopml.examples import write_example

    with err_console.status(f"writing example '{example}' into {directory} ..."):
        path = write_example(example, directory)
    emit(
        {"project_file": str(path), "example": example},
        as_json,
        lambda: console.print(f"Created [bold]{path}[/]. Next: loopml ingest -p {directory}"),
    )


def _ingest_text(result: Any) -> None:
    ds = result.dataset
    console.print(
        f"Data set [bold]{ds.name}[/] version {ds.version}: {ds.rows:,} rows accepted, "
        f"{ds.rows_quarantined:,} quarantined of {ds.rows_read:,} read."
    )
    for rule, count in result.quarantine_counts.items():
        console.print(f"  quarantined by rule {rule}: {count:,}")
    if result.contract_created:
        console.print(
            f"Inferred data contract v{result.contract.version}: contracts/{ds.name}.v1.yaml (edit freely)."
        )
    if result.added_columns:
        console.print(
            f"[yellow]New columns not in the contract (ignored):[/] {', '.join(result.added_columns)}"
        )
    console.print(f"Snapshot sha256 {ds.content_hash[:16]}…")


@handle_errors
def ingest(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Read the source, enforce (first: infer and save) the data contract, write a versioned snapshot."""
    proj = open_project(project)
    with err_console.status("ingesting ..."):
        result = proj.ingest()
    ds = result.dataset
    payload = {
        "dataset": ds.name,
        "version": ds.version,
        "rows": ds.rows,
        "rows_read": ds.rows_read,
        "rows_quarantined": ds.rows_quarantined,
        "quarantine_counts": result.quarantine_counts,
        "content_hash": ds.content_hash,
        "contract_version": result.contract.version,
        "contract_created": result.contract_created,
        "added_columns": list(result.added_columns),
    }
    emit(payload, as_json, lambda: _ingest_text(result))


def _train_text(outcome: Any) -> None:
    v = outcome.version
    hold, base = v.metrics["holdout"], v.metrics["baseline"]
    table = Table(title=f"{v.name} version {v.version} (data set v{outcome.dataset_version})")
    for col in ("metric", "model", "baseline"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for key in hold:
        table.add_row(key, f"{hold[key]:.4f}", f"{base[key]:.4f}")
    console.print(table)
    console.print(
        "Promoted to [bold]champion[/] (first version)."
        if outcome.promoted
        else "Registered; the champion is unchanged (promotion is gated by the retraining loop)."
    )


@handle_errors
def train(
    project: ProjectOpt = Path("."),
    dataset_version: Annotated[int | None, typer.Option(help="Data set version (default: latest).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the model on a snapshot, evaluate on the latest rows by time, and register a version."""
    proj = open_project(project)
    with err_console.status("training ..."):
        outcome = proj.train(dataset_version)
    v = outcome.version
    payload = {
        "model": v.name,
        "version": v.version,
        "promoted": outcome.promoted,
        "sha256": v.sha256,
        "dataset_version": outcome.dataset_version,
        "metrics": v.metrics,
    }
    emit(payload, as_json, lambda: _train_text(outcome))


@handle_errors
def predict(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet file (or folder) to score.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write: .parquet or .csv.")],
    project: ProjectOpt = Path("."),
    model: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Score on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for a "
            "LocalCluster on this machine. Input: Parquet; output: a folder of Parquet partitions.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Batch-score a file with the same code path as the API (locally, or on Dask with --dask)."""
    from rich.progress import Progress

    proj = open_project(project)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("scoring", total=None)
        result = proj.predict_file(
            input, output, ref=model, progress=lambda n: bar.advance(task, n), dask=dask
        )
    payload = {
        "rows": result.rows,
        "output": result.output,
        "model_version": result.model_version,
        "partitions": result.partitions,
    }
    emit(
        payload,
        as_json,
        lambda: console.print(
            f"Scored {result.rows:,} rows with version {result.model_version} into {result.output}"
        ),
    )


@handle_errors
def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[
        str | None, typer.Option(help="Bind address (default from loopml.yaml: 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from loopml.yaml).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the prediction API (POST /v1/models/{name}/predict, /health/live, /health/ready)."""
    from loopml._optional import require

    uvicorn = require("uvicorn", "serving the API")
    proj = open_project(project)
    app = proj.app()
    bind_host, bind_port = host or proj.settings.serve.host, port or proj.settings.serve.port
    emit(
        {"url": f"http://{bind_host}:{bind_port}", "model": proj.name},
        as_json,
        lambda: err_console.print(
            f"Serving [bold]{proj.name}[/] at http://{bind_host}:{bind_port} (Ctrl+C to stop)"
        ),
    )
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="warning", timeout_graceful_shutdown=30)


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``."""
    for fn in (init, ingest, train, predict, serve):
        app.command(fn.__name__)(fn)
