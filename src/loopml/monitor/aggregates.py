"""Per-window aggregates of the prediction log, computed in SQL: what the dashboard draws.

One ``GROUP BY`` over the log (with each prediction's latest label) gives, per time window, model
version, score bin (for probabilities 0.00001 wide below 0.01, 0.001 wide above) and side of the
decision threshold: counts, score sums, label sums and error sums; one more per profiled input
gives its counts in the reference profile's bins. Python only folds those rows (a few per window)
into volume, label coverage, realized and label-free estimated metrics, the version that served
each window and drift per window, so the cost in Python does not grow with the number of predictions.

Windows are counted from the Unix epoch (whole days for ``1d``), by the prediction's event time
when its inputs carry one (not more than a day after it was made, as scoring accepts), else by when
it was made; shadow predictions are left out, as the monitor leaves them out. Realized metrics of a
binary classifier come from the binned scores: ROC AUC and average precision are those of scores
rounded down to their bin (ties within a bin count half; the fine bins below 0.01 keep the order of
the many low scores of a rare positive class), precision and recall at the threshold are exact.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from loopml.enums import Origin
from loopml.validate.profile import MISSING, OTHER, ColumnProfile, DriftCounts, Profile

__all__ = ["WindowAggregates", "log_totals", "window_aggregates"]

_CELL_WIDTH = 12  # numbers per cell (see WindowAggregates.cells)
SCORE_BINS = 1000  # probability scores are binned to 0.001 from FINE_BELOW up ...
FINE_BINS = 100_000  # ... and to 0.00001 below it
FINE_BELOW = 0.01
_MAX_DRIFT_COLUMNS = 24
_AHEAD_MS = 86_400_000  # an event time more than a day after the prediction was made is not used


@dataclass(frozen=True)
class WindowAggregates:
    """The SQL aggregates of one model's prediction log per window.

    ``cells``: ``[window, version, bin, flagged, n, score_sum, labelled, label_sum, label_sq_sum,
    error_sum, abs_error_sum, sq_error_sum]`` rows (errors: label - score, on the labelled rows;
    ``window``: its index from the epoch; ``bin``: the score bin, -1 for no score, 0 when scores are
    not probabilities; ``flagged``: whether the score is at or above the threshold);
    ``drift``: column -> ``[window, bin, n]`` rows in the reference profile's bins; ``predictions`` and
    ``labels``: the totals counted, to tell when the log has moved on."""

    window_ms: int
    computed_at: str
    predictions: int
    labels: int
    probabilities: bool
    threshold: float | None
    cells: list[list[float]] = field(default_factory=list)
    drift: dict[str, list[list[int]]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """An ``.npz`` file: the cells as one float64 array (quick to read back, whatever their
        number), everything else as JSON beside them; no pickle."""
        meta = {k: v for k, v in asdict(self).items() if k != "cells"}
        out = io.BytesIO()
        cells = np.asarray(self.cells, dtype=np.float64).reshape(-1, _CELL_WIDTH)
        np.savez(out, cells=cells, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowAggregates:
        with np.load(io.BytesIO(data), allow_pickle=False) as found:
            meta = json.loads(found["meta"].tobytes())
            return cls(**meta, cells=found["cells"].tolist())

    def window_start(self, index: int) -> datetime:
        return datetime.fromtimestamp(index * self.window_ms / 1000, UTC).replace(tzinfo=None)

    def drift_counts(self, profile: Profile) -> dict[int, DriftCounts]:
        """Per window: the counts of each profiled column in its bins (for ``compare_counts``)."""
        rows: dict[int, int] = {}
        for cell in self.cells:
            rows[int(cell[0])] = rows.get(int(cell[0]), 0) + int(cell[4])
        out: dict[int, dict[str, np.ndarray]] = {w: {} for w in rows}
        for column, found in self.drift.items():
            size = len(profile.columns[column].shares)
            for w, b, n in found:
                counts = out.setdefault(w, {}).setdefault(column, np.zeros(size))
                counts[b] += n
        return {w: DriftCounts(rows.get(w, 0), counts) for w, counts in out.items() if rows.get(w)}


def _sqlite_parts(event_time: str | None) -> tuple[str, str, dict[str, Any]]:
    made = "julianday(p.created_at)"
    moment = made
    params: dict[str, Any] = {}
    if event_time:
        params["path"] = "$." + json.dumps(event_time)
        given = (
            "julianday(CASE WHEN json_type(p.inputs, :path) = 'text' THEN json_extract(p.inputs, :path) END)"
        )
        moment = f"CASE WHEN {given} <= {made} + 1 THEN {given} ELSE {made} END"
    window = f"CAST(((({moment}) - 2440587.5) * 86400000.0 + 0.5) / :window_ms AS INTEGER)"
    label = (
        "(SELECT CAST(json_extract(f.label, '$') AS REAL) FROM feedback f "
        "WHERE f.prediction_id = p.id ORDER BY f.id DESC LIMIT 1)"
    )
    return window, label, params


def _postgres_parts(event_time: str | None) -> tuple[str, str, dict[str, Any]]:
    made = "p.created_at"
    moment = made
    params: dict[str, Any] = {}
    if event_time:
        params["column"] = event_time
        given = (
            "CASE WHEN json_typeof(p.inputs -> :column) = 'string' AND (p.inputs ->> :column) ~ "
            "'^\\d{4}-\\d{2}-\\d{2}' THEN (p.inputs ->> :column)::timestamptz END"
        )
        moment = f"CASE WHEN {given} <= {made} + interval '1 day' THEN {given} ELSE {made} END"
    window = f"floor(extract(epoch from ({moment})) * 1000 / :window_ms)::bigint"
    label = (
        "(SELECT CASE json_typeof(f.label) WHEN 'number' THEN (f.label #>> '{}')::float8 "
        "WHEN 'boolean' THEN CASE WHEN (f.label #>> '{}') = 'true' THEN 1.0 ELSE 0.0 END END "
        "FROM feedback f WHERE f.prediction_id = p.id ORDER BY f.id DESC LIMIT 1)"
    )
    return window, label, params


def _parts(conn: Connection, event_time: str | None) -> tuple[str, str, dict[str, Any]]:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
        return _postgres_parts(event_time)
    return _sqlite_parts(event_time)


def _cells(
    conn: Connection, window: str, label: str, params: dict[str, Any], probabilities: bool
) -> list[list[float]]:
    score_bin = (
        f"CASE WHEN s IS NULL THEN -1 WHEN s < {FINE_BELOW} THEN CAST(s * {FINE_BINS} AS INTEGER) "
        f"ELSE {FINE_BINS} + CAST(s * {SCORE_BINS} AS INTEGER) END"
        if probabilities
        else "0"
    )
    query = f"""
        WITH logged AS MATERIALIZED (
            SELECT {window} AS w, p.model_version AS v, p.score AS s, {label} AS y
            FROM predictions p WHERE p.model_name = :name AND p.origin != :shadow
        )
        SELECT w, v, {score_bin} AS b, CASE WHEN s >= :threshold THEN 1 ELSE 0 END AS flagged,
               COUNT(*), COALESCE(SUM(s), 0), COUNT(y), COALESCE(SUM(y), 0), COALESCE(SUM(y * y), 0),
               COALESCE(SUM(y - s), 0), COALESCE(SUM(ABS(y - s)), 0), COALESCE(SUM((y - s) * (y - s)), 0)
        FROM logged GROUP BY w, v, b, flagged ORDER BY w, v, b
    """  # the interpolated parts are this module's own SQL
    return [[float(x) for x in row] for row in conn.execute(text(query), params).all()]


def _bin_case(profile: ColumnProfile, value: str, is_number: str) -> str | None:
    """SQL giving the profile bin of ``value`` (numeric bins then missing; or categories)."""
    if profile.kind == "numeric":
        edges = " ".join(f"WHEN v <= {float(e)!r} THEN {i}" for i, e in enumerate(profile.edges))
        last = len(profile.edges)
        return f"CASE WHEN v IS NULL OR NOT ({is_number}) THEN {last + 1} {edges} ELSE {last} END"
    index = {c: i for i, c in enumerate(profile.categories)}
    if OTHER not in index or MISSING not in index:
        return None
    known = " ".join(
        f"WHEN v = '{c.replace(chr(39), chr(39) * 2)}' THEN {i}"
        for c, i in index.items()
        if c not in (OTHER, MISSING)
    )
    return f"CASE WHEN v IS NULL THEN {index[MISSING]} {known} ELSE {index[OTHER]} END"


def _drift(
    conn: Connection, window: str, params: dict[str, Any], column: str, profile: ColumnProfile
) -> list[list[int]]:
    postgres = conn.dialect.name == "postgresql"
    if column == "prediction":
        value, is_number = "p.score", "TRUE" if postgres else "1"
    elif postgres:
        value, is_number = "(p.inputs ->> :drift_column)", "TRUE"  # a non-number is NULL: missing
        if profile.kind == "numeric":
            value = f"CASE WHEN json_typeof(p.inputs -> :drift_column) = 'number' THEN {value}::float8 END"
    else:
        value = "json_extract(p.inputs, :drift_path)"
        is_number = "typeof(v) IN ('integer', 'real')"
        if profile.kind != "numeric":
            value = f"CAST({value} AS TEXT)"
    case = _bin_case(profile, "v", is_number)
    if case is None:
        return []
    query = f"""
        WITH logged AS MATERIALIZED (
            SELECT {window} AS w, {value} AS v FROM predictions p
            WHERE p.model_name = :name AND p.origin != :shadow
        )
        SELECT w, {case} AS b, COUNT(*) FROM logged GROUP BY w, b
    """  # bins from the profile, quotes doubled
    bound = {**params, "drift_column": column, "drift_path": "$." + json.dumps(column)}
    return [[int(x) for x in row] for row in conn.execute(text(query), bound).all()]


def window_aggregates(
    engine: Engine,
    name: str,
    *,
    window_ms: int,
    event_time: str | None,
    probabilities: bool,
    threshold: float | None,
    profile: Profile | None = None,
    inputs: list[str] | None = None,
) -> WindowAggregates:
    """Aggregate model ``name``'s prediction log per window of ``window_ms`` in SQL.

    ``probabilities``: scores are probabilities (binned, see ``SCORE_BINS``); ``threshold``: the decision
    threshold (flagged counts); ``profile`` and ``inputs``: the reference profile and the logged
    input columns whose drift per window is counted (the prediction always, when profiled)."""
    columns = [c for c in (profile.columns if profile else {}) if c == "prediction" or c in (inputs or [])]
    base = {"name": name, "shadow": str(Origin.SHADOW), "window_ms": window_ms, "threshold": threshold}
    if threshold is None:
        base["threshold"] = float("inf")
    with engine.begin() as conn:
        window, label, params = _parts(conn, event_time)
        params = {**base, **params}
        cells = _cells(conn, window, label, params, probabilities)
        drift = {
            c: _drift(conn, window, params, c, profile.columns[c])
            for c in columns[:_MAX_DRIFT_COLUMNS]
            if profile is not None
        }
        totals = _totals(conn, name)
    return WindowAggregates(
        window_ms=window_ms,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        predictions=totals[0],
        labels=totals[1],
        probabilities=probabilities,
        threshold=threshold,
        cells=cells,
        drift={c: rows for c, rows in drift.items() if rows},
    )


def _totals(conn: Connection, name: str) -> tuple[int, int]:
    found = conn.execute(
        text(
            "SELECT (SELECT COUNT(*) FROM predictions WHERE model_name = :name), "
            "(SELECT COUNT(*) FROM feedback)"
        ),
        {"name": name},
    ).one()
    return int(found[0]), int(found[1])


def log_totals(engine: Engine, name: str) -> tuple[int, int]:
    """How many predictions of model ``name`` and how many labels (of any model) the store holds:
    aggregates counted at other totals are out of date."""
    with engine.connect() as conn:
        return _totals(conn, name)
