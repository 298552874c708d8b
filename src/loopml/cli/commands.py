"""The project commands: init and check (from :mod:`loopml.cli.start`), ingest, train, predict, serve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._common import JsonOpt, ProjectOpt, console, emit, err_console, handle_errors, open_project
from loopml.cli.start import check, init

__all__ = ["register"]


def _ingest_text(result: Any) -> None:
    ds, name = result.dataset, escape(result.dataset.name)
    if not result.new_version:
        console.print(
            f"Nothing new past the watermark ({escape(str(result.watermark))}): data set [bold]{name}[/] "
            f"stays at version {ds.version}."
        )
        return
    console.print(
        f"Data set [bold]{name}[/] version {ds.version}: {result.accepted:,} rows accepted, "
        f"{result.quarantined:,} quarantined of {result.rows_read:,} read ({ds.rows:,} rows in the snapshot)."
    )
    for rule, count in sorted(result.quarantine_counts.items(), key=lambda kv: -kv[1]):
        console.print(f"  quarantined by rule {escape(rule)}: {count:,}")
    if result.contract_created:
        console.print(
            f"Inferred data contract v{result.contract.version}: contracts/{name}.v1.yaml (edit freely)."
        )
    if result.added_columns:
        console.print(
            f"[yellow]New columns not in the contract (ignored until `loopml data accept-schema`):[/] "
            f"{escape(', '.join(result.added_columns))}"
        )
    console.print(f"Snapshot {ds.id} sha256 {ds.content_hash[:16]}…")
    if result.report:
        console.print(f"Data quality report: {escape(result.report)} (in the artifact store)")


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
    proj.check(input)  # a misspelled column: one line, before the progress bar and before any write
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
    selection = m.get("selection") or {}
    if selection:
        console.print(f"Model: {escape(selection['summary'])}.")
    for dropped in selection.get("dropped", []):
        console.print(f"Dropped {escape(', '.join(dropped['features']))}: {escape(dropped['reason'])}.")
    refit = m.get("refit")
    if refit:  # the judged fit's scores above; the served version learned every row
        console.print(
            f"Judged on the newest {m['rows_holdout']:,} rows after learning {m['rows_train']:,}; then "
            f"refitted on all {refit['rows']:,} rows, through {refit['through']} (retrain.refit)."
        )
    derived = m.get("derived_features") or []
    if derived:
        console.print(
            f"{len(derived)} derived feature(s) (datetime parts, windows, ratios): listed in the report "
            "with the setting that turns each off."
        )
    for warning in outcome.warnings:
        console.print(f"[yellow]warning:[/] {escape(str(warning))}")
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
        "selection": v.metrics.get("selection"),  # which candidate won on validation, by how much
        # the judged fit (its scores above) and what the served version learned from (retrain.refit)
        "evaluated": {k: v.metrics.get(k) for k in ("rows_train", "rows_holdout", "holdout_start", "score")},
        "refit": v.metrics.get("refit"),
        "rows_learned": (v.metrics.get("refit") or {}).get("rows", v.metrics.get("rows_train")),
        "cutoff": v.metrics.get("cutoff"),  # the newest event time the served version learned from
        "derived_features": v.metrics.get("derived_features", []),
        "warnings": [w.to_dict() for w in outcome.warnings],
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
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add each row's feature contributions (explain_* columns): the top --explain-k "
            "features by magnitude, then the rest summed; base value + contributions = raw score.",
        ),
    ] = False,
    explain_k: Annotated[
        int,
        typer.Option("--explain-k", min=1, max=100, metavar="K", help="Features per row with --explain."),
    ] = 5,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Read and add window features in the state the API replicas share (serve.online_store), "
            "so the rows count in the API's windows at once; default: a state of this run's own.",
        ),
    ] = False,
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
            explain=explain,
            explain_k=explain_k,
            online=online,
        )
    payload = {
        "rows": result.rows,
        "output": result.output,
        "model_version": result.model_version,
        "partitions": result.partitions,
        "quarantined": result.quarantined,
        "quarantine": result.quarantine,
        "quarantine_counts": result.quarantine_counts,
        "scored_as_missing": result.scored_as_missing,
    }
    where = result.output if result.table is None else f"table {result.table} at {result.output}"
    if result.table is not None:
        payload["table"] = result.table
    emit(payload, as_json, lambda: _predict_text(result, where))


def _predict_text(result: Any, where: str) -> None:
    """What `loopml predict` did: rows scored, rows quarantined (by rule), values scored as missing."""
    console.print(f"Scored {result.rows:,} rows with version {result.model_version} into {escape(where)}")
    if result.quarantined:
        rules = ", ".join(f"{rule} {n:,}" for rule, n in sorted(result.quarantine_counts.items()))
        console.print(
            f"[yellow]Quarantined {result.quarantined:,} rows that break the data contract[/] ({rules}), "
            f"not scored: {escape(str(result.quarantine))}"
        )
    for column, n in sorted(result.scored_as_missing.items()):
        console.print(f"Scored {n:,} values of {escape(column)} outside its categories as missing.")


@handle_errors
def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[
        str | None, typer.Option(help="Bind address (default from loopml.yaml: 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from loopml.yaml).")] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Also serve the v2 inference protocol over gRPC here (0: a free port)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the prediction API (/v1 predict, /v2 inference, /health, /metrics; admin routes with a token).

    SIGTERM stops it gracefully: readiness turns 503, requests in flight finish, the prediction log drains.
    """
    from loopml.dashboard import dashboard_router

    proj = open_project(project)
    grpc: list[str] = []  # the gRPC address, once its port is checked (before the banner)

    def banner(url: str) -> None:  # once the port is bound: a port in use is one line, no banner
        shown = {"url": url, "model": proj.name, **({"grpc": grpc[0]} if grpc else {})}
        also = f" and gRPC at {escape(grpc[0])}" if grpc else ""
        emit(
            shown,
            as_json,
            lambda: err_console.print(
                f"Serving [bold]{escape(proj.name)}[/] at {escape(url)}{also} (Ctrl+C to stop)"
            ),
        )
        sys.stdout.flush()  # `loopml up --json` reads it through a pipe

    # the dashboard lives at the edge: composed here, not in serve
    proj.serve(
        host,
        port,
        routers=[dashboard_router(proj)],
        on_listening=banner,
        grpc_port=grpc_port,
        on_grpc_listening=grpc.append,
    )


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``."""
    for fn in (init, check, ingest, train, predict, serve):
        app.command(fn.__name__)(fn)
