"""The data quality report: one small, self-contained HTML page per snapshot, safe to mail around.

It carries binned summaries only, never a row: rows per day of the event time, the real count of
missing values per column (over the whole snapshot), quarantine counts by rule, and per column a
histogram over rounded bin edges, the most frequent categories, or, for ids and times, a summary.
Charts are static SVG (``templates/data_report.html.j2``, autoescaped), so the page opens offline,
runs no script and stays well under a megabyte.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from loopml.config import Settings
from loopml.store import Store
from loopml.validate.charts import Chart, Charts, Note, Section, Table, bar_chart, nice_ticks, render
from loopml.validate.contract import DataContract

__all__ = ["SAMPLE_ROWS", "column_summary", "quality_report_key", "write_quality_report"]

SAMPLE_ROWS = 200_000
_MAX_COLUMNS = 40
_TOP_CATEGORIES = 15
_BINS = 20
_MANY = 50  # a category column with more distinct values is summarised, not drawn


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


def _null_counts(store: Store, uri: str) -> dict[str, int]:
    """Missing values per column over the whole snapshot (Parquet statistics, else a column read)."""
    with store.artifacts.open(uri) as fh:
        parquet = pq.ParquetFile(fh)
        meta, names = parquet.metadata, parquet.schema_arrow.names
        counts: dict[str, int] = {}
        for j, name in enumerate(names):
            stats = [meta.row_group(i).column(j).statistics for i in range(meta.num_row_groups)]
            if all(s is not None and s.has_null_count for s in stats):
                counts[name] = int(sum(s.null_count for s in stats if s is not None))
            else:
                counts[name] = int(parquet.read(columns=[name]).column(0).null_count)
        return counts


@dataclass(frozen=True)
class _Role:
    """How a column is summarised: ``id`` and ``time`` columns never get a histogram."""

    kind: str  # id | time | many (a category with too many values to draw) | numeric | category


def _role(spec_name: str, dtype: str, values: pd.Series, contract: DataContract) -> _Role:
    if spec_name == contract.event_time or dtype == "datetime":
        return _Role("time")
    lowered = spec_name.lower()
    distinct = values.nunique(dropna=True)
    id_like = spec_name == contract.id_column or lowered.endswith(("_id", "id", "_key", "uuid"))
    if dtype in ("string", "category", "str", "object") and len(values) and distinct > 0.5 * len(values):
        id_like = True
    if id_like and dtype != "bool":
        return _Role("id")
    if dtype in ("int", "float"):
        return _Role("numeric")
    return _Role("many" if distinct > _MANY else "category")


def _edges(x: np.ndarray) -> list[float]:
    """Round bin edges over the central 99% of ``x`` (the tails fall in the first and last bins)."""
    lo, hi = (float(v) for v in np.quantile(x, [0.005, 0.995]))
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        step = 10 ** math.floor(math.log10(abs(lo))) if lo else 1.0
        return [lo - step, lo + step]
    return nice_ticks(lo, hi, _BINS)


def _numeric_chart(name: str, values: pd.Series) -> Chart | Note:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return Note(f"{name}: no finite value.", "note")
    edges = _edges(x)
    inner = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)[0]
    labels = [f"{lo:g} to {hi:g}" for lo, hi in itertools.pairwise(edges)]
    labels[0], labels[-1] = f"up to {edges[1]:g}", f"{edges[-2]:g} and up"
    return bar_chart(labels, inner.tolist(), title=f"{name} (number)", y_title="rows")


def _category_chart(name: str, values: pd.Series) -> Chart:
    counts = values.astype("string").fillna("(missing)").value_counts()
    top = counts.head(_TOP_CATEGORIES)
    labels, numbers = [str(k) for k in top.index], top.tolist()
    if len(counts) > _TOP_CATEGORIES:
        labels.append(f"{len(counts) - _TOP_CATEGORIES:,} others")
        numbers.append(int(counts.iloc[_TOP_CATEGORIES:].sum()))
    return bar_chart(labels, numbers, title=f"{name} (category)", y_title="rows")


def column_summary(name: str, dtype: str, values: pd.Series, contract: DataContract) -> list[Any]:
    """One row of the columns table: name, type, role, distinct values and missing in the sample,
    and for times the first and last day (never a single row's value)."""
    role = _role(name, dtype, values, contract).kind
    span = ""
    if role == "time":
        times = pd.to_datetime(values, errors="coerce").dropna()
        if len(times):
            span = f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}"
    return [name, dtype, role, int(values.nunique(dropna=True)), int(values.isna().sum()), span]


def _volume(times: pd.Series | None) -> Section | None:
    if times is None or not len(times):
        return None
    stamps = pd.to_datetime(times, errors="coerce").dropna()
    if not len(stamps):
        return None
    days = (stamps.max() - stamps.min()).days
    freq, unit = ("D", "day") if days <= 120 else ("W", "week") if days <= 900 else ("MS", "month")
    per = stamps.dt.to_period(freq if freq != "MS" else "M").value_counts().sort_index()
    labels = [str(p.start_time.date()) for p in per.index]
    chart = bar_chart(labels, per.tolist(), title=f"Rows per {unit} (event time)", y_title="rows")
    return Section("Volume over time", [Charts([chart])])


def _missingness(nulls: dict[str, int], rows: int) -> Section:
    ordered = sorted(nulls.items(), key=lambda kv: (-kv[1], kv[0]))
    table = Table(
        ["column", "missing", "share"],
        [[c, n, f"{n / rows:.2%}" if rows else ""] for c, n in ordered],
        id="missingness",
    )
    if not any(nulls.values()):
        note = Note(f"No value is missing in any of the {len(nulls)} columns of the {rows:,} accepted rows.")
        return Section("Missingness", [note, table])
    chart = bar_chart([c for c, _ in ordered], [n for _, n in ordered], title="Missing values per column")
    return Section("Missingness", [Charts([chart]), table])


def _quarantine(quarantine: dict[str, int]) -> Section:
    if not quarantine:
        return Section("Quarantine reasons", [Note("No row was quarantined.")])
    chart = bar_chart(list(quarantine), list(quarantine.values()), title="Rows quarantined, by rule")
    table = Table(["rule", "rows"], [[k, v] for k, v in quarantine.items()], id="quarantine")
    return Section("Quarantine reasons", [Charts([chart]), table])


def _distributions(sample: pd.DataFrame, contract: DataContract) -> list[Section]:
    specs = [s for s in contract.columns[:_MAX_COLUMNS] if s.name in sample.columns]
    table = Table(
        ["column", "type", "summarised as", "distinct (sample)", "missing (sample)", "span"],
        [column_summary(s.name, s.dtype, sample[s.name], contract) for s in specs],
        id="columns",
    )
    charts: list[Chart] = []
    notes: list[Note] = []
    for spec in specs:
        role = _role(spec.name, spec.dtype, sample[spec.name], contract).kind
        if role == "numeric":
            drawn = _numeric_chart(spec.name, sample[spec.name])
            (charts if isinstance(drawn, Chart) else notes).append(drawn)  # type: ignore[arg-type]
        elif role == "category":
            charts.append(_category_chart(spec.name, sample[spec.name]))
    note = Note(
        f"Ids, times and categories with over {_MANY} values are summarised in the table above, not "
        "drawn; numbers are binned over round "
        "edges (the lowest and highest half percent fall in the first and last bins).",
        "note",
    )
    return [
        Section("Columns", [table]),
        Section("Distributions", [note, *notes, Charts(charts)]),
    ]


def write_quality_report(
    settings: Settings, store: Store, dataset: Any, contract: DataContract, quarantine: dict[str, int]
) -> str:
    """Render the report of ``dataset`` (a ``DatasetVersion``) into the artifact store; returns its key."""
    sample = _read(store, dataset.uri, rows=SAMPLE_ROWS)
    event_time = contract.event_time if contract.event_time in sample.columns else None
    times = _read(store, dataset.uri, columns=[event_time])[event_time] if event_time else None
    volume = _volume(times)
    sections = [
        *([volume] if volume is not None else []),
        _missingness(_null_counts(store, dataset.uri), int(dataset.rows)),
        _quarantine(quarantine),
        *_distributions(sample, contract),
    ]
    sampled = dataset.rows > SAMPLE_ROWS
    page = render(
        "data_report.html.j2",
        title=f"{settings.name}: data set version {dataset.version}",
        dataset=dataset,
        contract=contract,
        digest=dataset.content_hash[:16],
        sampled=f"Distributions show the first {SAMPLE_ROWS:,} rows." if sampled else "",
        sections=sections,
    )
    key = quality_report_key(settings.name, dataset.version)
    store.artifacts.put_bytes(key, page.encode())
    return key
