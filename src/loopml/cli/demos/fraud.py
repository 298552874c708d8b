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
from loopml.cli.demos.fraud_loop import alert_counts, configure, full_knowledge, replay, summarize
from loopml.errors import InputError

__all__ = ["REGIME", "REPLAY_DAYS", "render", "run"]

REPLAY_DAYS = 28  # four weeks of traffic after the API's day, across the regime change
# The fraudsters' new pattern in the demo: compromised cards drained by bursts of small payments
# (more often, and more per day, than the simulator's default) while short terminal compromises,
# which a 7-day label delay hides from any model, stay rare. Learnable, and missed by the old model.
REGIME: dict[str, Any] = {
    "card_compromise_rate_after": 0.5,
    "card_burst_tx_after": 5.0,
    "terminal_compromise_rate_after": 0.7,
}


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


def _actions(proj: Any) -> dict[str, Any]:
    """Deliver what the API and batch put in the outbox: cases to the example receiver, card blocks to SQL."""
    from loopml.actions.demo import run_fraud_actions

    done = run_fraud_actions(proj.settings, proj.store.engine)
    return {
        "cases_sent": done["cases_received"],
        "duplicate_cases_dropped": done["duplicates_dropped"],
        "card_blocks": done["by_endpoint"].get("blocks", {}).get("delivered", 0),
        "actions_pending": done["pending"],
        "actions_dead": done["dead"],
    }


def run(directory: Path, *, quick: bool = False) -> dict[str, Any]:
    """Generate data, ingest, train, register, serve over HTTP, score a held-out day two ways; then
    replay the following weeks across the regime change with the retraining loop running.

    ``quick``: a smaller population and fewer trees, the same steps (for tests).
    """
    started = time.perf_counter()
    data = {**REGIME, **({"n_customers": 400, "n_terminals": 2_500} if quick else {})}
    proj, ingested, outcome = build("fraud", directory, lambda d: configure(d, quick), **data)
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
        **_actions(proj),
        **_loop(proj, day),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def _loop(proj: Any, day: pd.DataFrame) -> dict[str, Any]:
    """The retraining loop across the regime change (see :mod:`loopml.cli.demos.fraud_loop`)."""
    frame = pd.read_parquet(proj.settings.project_dir / "data" / "replay.parquet")
    api_day = int(day["tx_time_days"].iloc[0])
    change = api_day + 1  # the simulator's regime change: the day after the API's day
    last = api_day + REPLAY_DAYS
    run = replay(proj, frame, api_day, last)
    figures, per_day = summarize(run, api_day, change)
    promoted = figures["promotion_day"]
    later = frame[frame["tx_time_days"] > (promoted or last)]
    version = next((c["challenger_version"] for c in figures["cycles"] if c["status"] == "promoted"), None)
    same_days = {}
    if promoted and version and len(later):
        same_days = full_knowledge(proj, frame, promoted, later, version)
    loop_ap, oracle_ap = same_days.get("loop", float("nan")), same_days.get("full_knowledge", float("nan"))
    return {
        **figures,
        "ap_full_knowledge": oracle_ap,
        "ap_loop_same_days": loop_ap,
        "loop_within_10pct_of_full_knowledge": bool(loop_ap >= 0.9 * oracle_ap) if same_days else False,
        "alerts": alert_counts(proj),
        "days": [
            {"day": int(d), "version": int(v), "ap": float(a)}
            for d, v, a in zip(per_day["tx_time_days"], per_day["version"], per_day["ap"], strict=True)
        ],
    }


def render(summary: dict[str, Any]) -> None:
    table = Table(title="loopml demo: fraud", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if not isinstance(value, list | dict):
            table.add_row(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    _render_loop(summary)


def _render_loop(summary: dict[str, Any]) -> None:
    """The loop's before/after table, its cycles and the day-by-day average precision."""
    loop = Table(title="the loop across the regime change (average precision, served)")
    for column in ("period", "model", "average precision"):
        loop.add_column(column, justify="left" if column == "period" else "right")
    promoted = summary.get("promotion_day")
    loop.add_row("before the change", "v1", f"{summary['ap_before_change']:.4f}")
    loop.add_row("after the change", "v1 (old)", f"{summary['ap_after_change_old_model']:.4f}")
    if promoted:
        version = next(c["challenger_version"] for c in summary["cycles"] if c["status"] == "promoted")
        loop.add_row(
            f"after the promotion (day {promoted})", f"v{version}", f"{summary['ap_after_promotion']:.4f}"
        )
        loop.add_row("same days, full-knowledge model", "oracle", f"{summary['ap_full_knowledge']:.4f}")
    console.print(loop)
    for cycle in summary.get("cycles", []):
        console.print(
            f"day {cycle['day']}: cycle {cycle['status']} (challenger v{cycle['challenger_version']}): "
            + "; ".join(cycle["reasons"] or cycle.get("triggers", []))
        )
    days = Table(title="day by day")
    for column in ("day", "serving", "average precision"):
        days.add_column(column, justify="right")
    for row in summary.get("days", []):
        days.add_row(str(row["day"]), f"v{row['version']}", f"{row['ap']:.3f}")
    console.print(days)
