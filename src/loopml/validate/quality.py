"""The data quality report: one self-contained HTML page per snapshot (plotly.js inlined).

Distributions of every column, missingness, quarantine reasons, and volume over time, drawn from
the snapshot itself (a sample of at most ``SAMPLE_ROWS`` rows for the distributions; the event-time
column is read whole for the volume).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from loopml.config import Settings
from loopml.store import Store
from loopml.validate.contract import DataContract

__all__ = ["SAMPLE_ROWS", "quality_report_key", "write_quality_report"]

SAMPLE_ROWS = 200_000
_MAX_COLUMNS = 40


def quality_report_key(name: str, version: int) -> str:
    """Where the report of data set ``name`` version ``version`` is stored in the artifact store."""
    return f"reports/{name}/data-v{version}.html"


def _read(store: Store, uri: str, columns: list[str] | None = None, rows: int | None = None) -> pd.DataFrame:
    with store.artifacts.open(uri) as fh:
        parquet = pq.ParquetFile(fh)
        if rows is None:
            return parquet.read(columns=columns).to_pandas()
        batches = parquet.iter_batches(batch_size=rows, columns=columns)
        first = next(batches, None)
        return first.to_pandas() if first is not None else pd.DataFrame(columns=columns)


def _figure(fig: Any, div: str, height: int = 300) -> str:
    fig.update_layout(height=height, template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 40})
    out: str = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div)
    return out


def _distribution(go: Any, column: pd.Series, kind: str, index: int) -> str:
    name = str(column.name)
    if kind in ("int", "float"):
        fig = go.Figure(go.Histogram(x=pd.to_numeric(column, errors="coerce").dropna(), nbinsx=50))
    elif kind == "datetime":
        fig = go.Figure(go.Histogram(x=pd.to_datetime(column, errors="coerce").dropna(), nbinsx=50))
    else:
        counts = column.astype("string").value_counts().head(20)
        fig = go.Figure(go.Bar(x=counts.index.tolist(), y=counts.to_numpy()))
    fig.update_layout(title=f"{name} ({kind})")
    return _figure(fig, f"dist-{index}", 260)


def _sections(
    go: Any,
    sample: pd.DataFrame,
    contract: DataContract,
    quarantine: dict[str, int],
    volume: pd.Series | None,
) -> list[tuple[str, str]]:
    sections = []
    if volume is not None and len(volume):
        per_day = pd.to_datetime(volume).dt.floor("D").value_counts().sort_index()
        fig = go.Figure(go.Bar(x=per_day.index, y=per_day.to_numpy()))
        fig.update_layout(title="Rows per day (event time)")
        sections.append(("Volume over time", _figure(fig, "volume")))
    missing = sample.isna().mean().sort_values(ascending=False)
    fig = go.Figure(go.Bar(x=missing.index.tolist(), y=missing.to_numpy()))
    fig.update_layout(title="Share of missing values per column", yaxis={"range": [0, 1]})
    sections.append(("Missingness", _figure(fig, "missingness")))
    if quarantine:
        fig = go.Figure(go.Bar(x=list(quarantine), y=list(quarantine.values())))
        fig.update_layout(title="Rows quarantined, by rule")
        sections.append(("Quarantine reasons", _figure(fig, "quarantine")))
    else:
        sections.append(("Quarantine reasons", "<p>No row was quarantined.</p>"))
    charts = [
        _distribution(go, sample[spec.name], spec.dtype, i)
        for i, spec in enumerate(contract.columns[:_MAX_COLUMNS])
        if spec.name in sample.columns
    ]
    sections.append(
        ("Distributions", '<div class="grid">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>")
    )
    return sections


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px}"
    "h2{border-bottom:1px solid #ddd}.grid{display:grid;grid-template-columns:1fr 1fr;gap:.5rem}"
)


def _summary(dataset: Any, contract: DataContract) -> str:
    sampled = f" Distributions show the first {SAMPLE_ROWS:,} rows." if dataset.rows > SAMPLE_ROWS else ""
    counts = f"{dataset.rows:,} rows accepted, {dataset.rows_quarantined:,} quarantined"
    counts += f" of {dataset.rows_read:,} read"
    digest = html.escape(dataset.content_hash[:16])
    return f"<p>{counts}; contract v{contract.version}; content SHA-256 {digest}.{sampled}</p>"


def write_quality_report(
    settings: Settings, store: Store, dataset: Any, contract: DataContract, quarantine: dict[str, int]
) -> str:
    """Render the report of ``dataset`` (a ``DatasetVersion``) into the artifact store; returns its key."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    sample = _read(store, dataset.uri, rows=SAMPLE_ROWS)
    event_time = contract.event_time if contract.event_time in sample.columns else None
    volume = _read(store, dataset.uri, columns=[event_time])[event_time] if event_time else None
    sections = _sections(go, sample, contract, quarantine, volume)
    body = "".join(f"<h2>{html.escape(t)}</h2>{b}" for t, b in sections)
    title = f"{html.escape(settings.name)}: data set version {dataset.version}"
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head>"
        f"<body><h1>{title}</h1>{_summary(dataset, contract)}{body}</body></html>"
    )
    key = quality_report_key(settings.name, dataset.version)
    store.artifacts.put_bytes(key, page.encode())
    return key
