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
    example: Annotated[
        str, typer.Option(help="Example to start from (see `loopml demo --help` for what each one is).")
    ] = "fraud",
    as_json: JsonOpt = False,
) -> None:
    """Create a project: a commented loopml.yaml and the example's data.

    Example: loopml init my-fraud --example fraud && cd my-fraud && loopml ingest && loopml train
    """
    from loopml.project import Project

    with err_console.status(f"writing example '{example}' into {directory} ..."):
        project = Project.init(directory, example=example)
    path = project.project_file
    emit(
        {"project_file": str(path), "example": example},
        as_json,
        lambda: console.print(f"Created [bold]{path}[/]. Next: loopml ingest -p {directory}"),
    )


def _ingest_text(result: Any) -> None:
    ds = result.dataset
    if not result.new_version:
        console.print(
            f"Nothing new past the watermark ({result.watermark}): data set [bold]{ds.name}[/] stays at "
            f"version {ds.version}."
        )
        return
    console.print(
        f"Data set [bold]{ds.name}[/] version {ds.version}: {result.accepted:,} rows accepted, "
        f"{result.quarantined:,} quarantined of {result.rows_read:,} read ({ds.rows:,} rows in the snapshot)."
    )
    for rule, count in sorted(result.quarantine_counts.items(), key=lambda kv: -kv[1]):
        console.print(f"  quarantined by rule {rule}: {count:,}")
    if result.contract_created:
        console.print(
            f"Inferred data contract v{result.contract.version}: contracts/{ds.name}.v1.yaml (edit freely)."
        )
    if result.added_columns:
        console.print(
            f"[yellow]New columns not in the contract (ignored until `loopml data accept-schema`):[/] "
            f"{', '.join(result.added_columns)}"
        )
    console.print(f"Snapshot {ds.id} sha256 {ds.content_hash[:16]}…")
    if result.report:
        console.print(f"Data quality report: {result.report} (in the artifact store)")


@handle_errors
def ingest(
    project: ProjectOpt = Path("."),
    input: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i", help="Add the rows of this CSV/Parquet file (e.g. fixed quarantine rows)."
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Check the rows on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' "
            "for a LocalCluster on this machine. Source: Parquet (a file or a folder of files).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read the source, clean it, enforce (first: infer and save) the data contract, write a snapshot.

    With source.watermark only rows past the last ingest are read. Rows that fail a rule go to the
    quarantine snapshot (see `loopml data quarantine`). With --dask the workers read and check the
    Parquet files (same snapshot, same quarantine); a first ingest infers the contract from a sample.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    proj = open_project(project)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed:,.0f} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("reading", total=None)
        result = proj.ingest(
            input, progress=lambda phase, rows: bar.update(task, description=phase, completed=rows), dask=dask
        )
    ds = result.dataset
    payload = {
        "dataset": ds.name,
        "version": ds.version,
        "snapshot": ds.id,
        "new_version": result.new_version,
        "rows": ds.rows,
        "rows_read": result.rows_read,
        "accepted": result.accepted,
        "quarantined": result.quarantined,
        "rows_quarantined": result.quarantined,
        "quarantine_by_rule": result.quarantine_counts,
        "quarantine_counts": result.quarantine_counts,
        "content_hash": ds.content_hash,
        "contract_version": result.contract.version,
        "contract_created": result.contract_created,
        "added_columns": list(result.added_columns),
        "watermark": result.watermark,
        "report": proj.artifact_uri(result.report) if result.report else None,
    }
    emit(payload, as_json, lambda: _ingest_text(result))


def _train_text(outcome: Any, report: str | None) -> None:
    v = outcome.version
    m = v.metrics
    hold, base, ci = m["holdout"], m["baseline"], m.get("holdout_ci", {})
    champion = (m.get("champion") or {}).get("holdout")
    table = Table(title=f"{v.name} version {v.version} (data set v{outcome.dataset_version}, holdout)")
    for col in ("metric", "model", "95% CI", "baseline", *(["champion"] if champion else [])):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, value in hold.items():
        low_high = ci.get(key)
        cells = [
            f"{value:.4f}",
            f"{low_high[0]:.4f}-{low_high[1]:.4f}" if low_high else "",
            f"{base[key]:.4f}",
        ]
        style = "bold" if key == m["metric"] else None
        table.add_row(
            key, *cells, *([f"{champion.get(key, float('nan')):.4f}"] if champion else []), style=style
        )
    console.print(table)
    if m.get("threshold") is not None:
        console.print(f"Decision threshold {m['threshold']:.4f} (minimum cost on the validation slice).")
    if report:
        console.print(f"Report: {report}")
    console.print(
        "Promoted to [bold]champion[/] (first version)."
        if outcome.promoted
        else "Registered; the champion is unchanged (promote with `loopml models promote VERSION`)."
    )
    for c in outcome.companions:
        cm = c.version.metrics
        console.print(
            f"Also trained [bold]{c.version.name}[/] version {c.version.version}: {cm['metric']} "
            f"{cm['score']:.4f} (baseline {cm['baseline_score']:.4f})"
            + (", promoted to champion." if c.promoted else ", registered.")
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
    report = proj.artifact_uri(outcome.report) if outcome.report else None
    payload = {
        "model": v.name,
        "model_version": v.version,
        "version": v.version,
        "promoted": outcome.promoted,
        "metric": v.metrics["metric"],
        "score": v.metrics["score"],
        "baseline_score": v.metrics["baseline_score"],
        "threshold": v.metrics.get("threshold"),
        "report": report,
        "sha256": v.sha256,
        "dataset_version": outcome.dataset_version,
        "metrics": v.metrics,
        "companions": [  # models trained beside it (the maintenance failure model)
            {
                "model": c.version.name,
                "model_version": c.version.version,
                "promoted": c.promoted,
                "metric": c.version.metrics["metric"],
                "score": c.version.metrics["score"],
            }
            for c in outcome.companions
        ],
    }
    emit(payload, as_json, lambda: _train_text(outcome, report))


@handle_errors
def predict(
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Where to write: a .parquet or .csv file, or a database URL with --output-table.",
        ),
    ],
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            help="CSV or Parquet file (or folder) to score, or a database URL with --input-table or "
            "--input-query (SQLAlchemy: sqlite:///data/x.db, a relative path starting at the project; "
            "postgresql://user@host/db). A forecast model: the series to forecast "
            "(item, optional group and horizon); leave out for every series at every step.",
        ),
    ] = None,
    input_table: Annotated[
        str | None,
        typer.Option("--input-table", metavar="NAME", help="Table to score (NAME or SCHEMA.NAME)."),
    ] = None,
    input_query: Annotated[
        str | None,
        typer.Option("--input-query", metavar="SQL", help="Query whose rows to score: 'SELECT ...'."),
    ] = None,
    output_table: Annotated[
        str | None,
        typer.Option(
            "--output-table",
            metavar="NAME",
            help="Table to write the scores to (NAME or SCHEMA.NAME): the Parquet output's columns, "
            "typed from the first chunk; each chunk is committed on its own.",
        ),
    ] = None,
    if_exists: Annotated[
        str | None,
        typer.Option(
            "--if-exists",
            metavar="fail|append|replace",
            help="When the output table is already there: fail (default), append, or replace it.",
        ),
    ] = None,
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
    """Batch-score a file or a database table with the same code path as the API (locally, or on Dask
    with --dask), into a file or a database table.

    A database is an SQLAlchemy URL (a relative SQLite path starts at the project). Examples:

    loopml predict -i rows.parquet -o scored.parquet

    loopml predict -i sqlite:///data/tx.db --input-table tx -o sqlite:///data/tx.db --output-table scores

    loopml predict -i postgresql://me@db/shop --input-query "SELECT * FROM tx" -o scored.csv
    """
    from rich.progress import Progress

    proj = open_project(project)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("scoring", total=None)
        result = proj.predictions.predict_file(
            input,
            output,
            ref=model,
            progress=lambda n: bar.advance(task, n),
            dask=dask,
            input_table=input_table,
            input_query=input_query,
            output_table=output_table,
            if_exists=if_exists,
        )
    payload = {
        "rows": result.rows,
        "output": result.output,
        "model_version": result.model_version,
        "partitions": result.partitions,
    }
    where = result.output if result.table is None else f"table {result.table} at {result.output}"
    if result.table is not None:
        payload["table"] = result.table
    emit(
        payload,
        as_json,
        lambda: console.print(
            f"Scored {result.rows:,} rows with version {result.model_version} into {where}"
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
    """Start the prediction API (/v1 predict, /v2 inference, /health, /metrics; admin routes with a token).

    SIGTERM stops it gracefully: readiness turns 503, requests in flight finish, the prediction log drains.
    """
    from loopml.dashboard import dashboard_router

    proj = open_project(project)
    bind_host, bind_port = host or proj.settings.serve.host, port or proj.settings.serve.port
    emit(
        {"url": f"http://{bind_host}:{bind_port}", "model": proj.name},
        as_json,
        lambda: err_console.print(
            f"Serving [bold]{proj.name}[/] at http://{bind_host}:{bind_port} (Ctrl+C to stop)"
        ),
    )
    # the dashboard lives at the edge: composed here, not in serve
    proj.serve(bind_host, bind_port, routers=[dashboard_router(proj)])


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``."""
    for fn in (init, ingest, train, predict, serve):
        app.command(fn.__name__)(fn)
