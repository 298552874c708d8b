"""``loopml data``: data set versions, their quarantine, diffs, and accepting a new schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._common import (
    JsonOpt,
    ProjectOpt,
    console,
    emit,
    err_console,
    fmt,
    handle_errors,
    open_project,
)

__all__ = ["app"]

app = typer.Typer(help="Data set versions, quarantine, diffs and schema changes.", no_args_is_help=True)


def _summary(ds: Any) -> dict[str, Any]:
    return {
        "version": ds.version,
        "snapshot": ds.id,
        "created_at": ds.created_at,
        "rows": ds.rows,
        "rows_read": ds.rows_read,
        "accepted": ds.accepted,
        "quarantined": ds.rows_quarantined,
        "contract_version": ds.contract_version,
        "parent_version_id": ds.parent_id,
        "content_hash": ds.content_hash,
        "source": ds.source,
    }


@app.command("list")
@handle_errors
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every version of the project's data set, newest first."""
    proj = open_project(project)
    versions = [_summary(v) for v in proj.data.versions()]

    def render() -> None:
        table = Table(title=f"data set {escape(proj.name)}")
        for col in ("version", "created", "rows", "read", "quarantined", "contract", "sha256"):
            table.add_column(col, justify="right" if col in ("rows", "read", "quarantined") else "left")
        for v in versions:
            table.add_row(
                str(v["version"]),
                f"{v['created_at']:%Y-%m-%d %H:%M}",
                f"{v['rows']:,}",
                f"{v['rows_read']:,}",
                f"{v['quarantined']:,}",
                f"v{v['contract_version']}",
                v["content_hash"][:12],
            )
        console.print(table if versions else "No versions yet: run `loopml ingest`.")

    emit({"dataset": proj.name, "versions": versions}, as_json, render)


@app.command("show")
@handle_errors
def show(
    version: Annotated[int | None, typer.Argument(help="Version number (default: the latest).")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """One version: counts, quarantine by rule, schema changes, the source and the watermark."""
    proj = open_project(project)
    details = proj.data.details(version)
    payload = {
        "dataset": proj.name,
        **_summary(details.dataset),
        "uri": details.dataset.uri,
        "quarantine_by_rule": details.quarantine_by_rule,
        "schema_changes": details.schema_changes,
        "watermark": details.watermark,
    }
    emit(payload, as_json, lambda: console.print_json(data=payload, default=str))


@app.command("diff")
@handle_errors
def diff(
    old: Annotated[int, typer.Argument(help="The older version.")],
    new: Annotated[int | None, typer.Argument(help="The newer version (default: the latest).")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """What changed between two versions: schema, rows added and removed."""
    proj = open_project(project)
    found = proj.data.diff(old, new)
    result, target = found.to_dict(), found.new["version"]

    def render() -> None:
        rows = f"{result['from']['rows']:,} -> {result['to']['rows']:,} rows"
        console.print(
            f"{escape(proj.name)} v{old} -> v{target}: {rows}; "
            f"+{result['rows_added']:,} added, -{result['rows_removed']:,} removed "
            f"(matched by {result['matched_by']})."
        )
        for key in ("columns_added", "columns_removed", "type_changes"):
            if result[key]:
                console.print(f"  {key.replace('_', ' ')}: {escape(str(result[key]))}")

    emit(result, as_json, render)


@app.command("quarantine")
@handle_errors
def quarantine(
    version: Annotated[int | None, typer.Argument(help="Version number (default: the latest).")] = None,
    rule: Annotated[str | None, typer.Option(help="Only rows quarantined by this rule.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 10,
    export: Annotated[
        Path | None,
        typer.Option(help="Write the rows to this .csv or .parquet file (fix, then ingest --input)."),
    ] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Rows set aside by an ingest: counts per rule, examples, and an export to fix and ingest again."""
    proj = open_project(project)
    found = proj.data.quarantine(version, rule)
    ds, counts, rows = found.dataset, found.counts, found.rows
    if export is not None:
        found.export(export)
    sample = rows.head(limit).astype(object).where(rows.head(limit).notna(), None)
    payload = {
        "dataset": proj.name,
        "version": ds.version,
        "quarantined": ds.rows_quarantined,
        "quarantine_by_rule": counts,
        "rule": rule,
        "rows": len(rows),
        "exported_to": str(export) if export else None,
        "sample": sample.to_dict(orient="records"),
    }
    emit(payload, as_json, lambda: _render_quarantine(payload))


def _render_quarantine(payload: dict[str, Any]) -> None:
    console.print(
        f"{escape(payload['dataset'])} v{payload['version']}: {payload['quarantined']:,} rows quarantined"
        + (f", {payload['rows']:,} by rule {escape(payload['rule'])}" if payload["rule"] else "")
    )
    for name, count in sorted(payload["quarantine_by_rule"].items(), key=lambda kv: -kv[1]):
        console.print(f"  {escape(name)}: {count:,}")
    if payload["sample"]:
        table = Table()
        for col in ("_row", "_rule", "_column", "_value"):
            table.add_column(col.strip("_"))
        for row in payload["sample"]:
            table.add_row(*(fmt(row[c]) for c in ("_row", "_rule", "_column", "_value")))
        console.print(table)
    if payload["exported_to"]:
        console.print(
            f"Exported to {escape(payload['exported_to'])} (with _row, _rule, _column and _value: which "
            "rule failed on which column and value); fix it, then `loopml ingest --input FILE`."
        )


@app.command("accept-schema")
@handle_errors
def accept_schema(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Write the next contract version from the source's current columns and types."""
    proj = open_project(project)
    with err_console.status("reading the source ..."):
        accepted = proj.data.accept_schema()
    contract, change = accepted.contract, accepted.change
    payload = {
        "dataset": proj.name,
        "contract_version": contract.version,
        "contract_file": accepted.contract_file,
        **change.to_dict(),
    }
    emit(
        payload,
        as_json,
        lambda: console.print(
            f"Accepted: {escape(change.describe())}. Wrote {escape(accepted.contract_file)}; "
            "run `loopml ingest`."
        ),
    )
