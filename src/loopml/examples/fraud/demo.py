"""``loopml demo fraud``: the whole loop on the fraud simulator, for real, in one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.table import Table

from loopml.errors import InputError
from loopml.examples._demo import build, cell, console, jsonable_records, send_all
from loopml.examples.fraud import SimulationConfig
from loopml.examples.fraud.actions import run_fraud_actions
from loopml.examples.fraud.loop import (
    Counterparts,
    alert_counts,
    configure,
    full_knowledge,
    replay,
    summarize,
)
from loopml.project import Origin

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = ["REGIME", "REPLAY_DAYS", "STEADY_AFTER_DAYS", "render", "run"]

# Eight weeks after the API's day (days 119-173), across the regime change: a worker check every day,
# a cycle when a trigger fires (labels a week after an alert, about a week of new labels); the data holds
# one week more, left out to keep the demo within minutes on two cores.
REPLAY_DAYS = 55

# The loop against its yardsticks (the regime oracle, the same loop without label delay) is given over
# every day after the first promotion and at steady state: from four weeks after the change on, when
# the loop's models know three weeks of the new pattern (a label delay less than their no-delay
# counterparts); in the weeks before, one more week of labels of a young pattern matters most.
STEADY_AFTER_DAYS = 28

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


def _serve_and_batch(proj: Project, day: pd.DataFrame, id_column: str) -> dict[str, Any]:
    """Score ``day`` over real HTTP and as a batch file; compare the two."""
    inputs = proj.models.load(history=False).input_columns
    records = jsonable_records(day, [id_column, *inputs])
    with proj.start_server() as server:
        api_scores, latencies, failed = send_all(server.url, proj.name, records, id_column)
    folder = proj.directory / "demo"
    folder.mkdir(exist_ok=True)
    day.to_parquet(folder / "day.parquet", index=False)
    batch = proj.predictions.predict_file(folder / "day.parquet", folder / "day_scored.parquet")
    scored = pd.read_parquet(folder / "day_scored.parquet")
    api = np.array([api_scores.get(t, np.nan) for t in scored[id_column]])
    logged = proj.predictions.count(origin=Origin.API)
    return {
        "requests": len(records),
        "failed_requests": failed,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "predictions_logged": int(logged),
        "batch_rows": batch.rows,
        "api_equals_batch": bool(np.array_equal(api, scored["score"].to_numpy())),
    }


def _actions(proj: Project) -> dict[str, Any]:
    """Deliver what the API and batch put in the outbox: cases to the example receiver, card blocks to SQL."""
    done = run_fraud_actions(proj)
    return {
        "cases_sent": done["cases_received"],
        "duplicate_cases_dropped": done["duplicates_dropped"],
        "card_blocks": done["by_endpoint"].get("blocks", {}).get("delivered", 0),
        "actions_pending": done["pending"],
        "actions_dead": done["dead"],
    }


def run(directory: Path, *, quick: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Generate data, ingest, train, register, serve over HTTP, score a held-out day two ways; then
    replay the following weeks across the regime change with the retraining loop running.

    ``quick``: a smaller population and fewer trees, the same steps (for tests); ``seed``: the
    simulator's (its default when None). The yardsticks train in a spawned process: a script that
    calls this needs the usual ``if __name__ == "__main__":`` guard.
    """
    started = time.perf_counter()
    data = {**REGIME, **({"n_customers": 400, "n_terminals": 2_500} if quick else {})}
    data["seed"] = SimulationConfig.seed if seed is None else seed
    proj, ingested, outcome = build("fraud", directory, lambda d: configure(d, quick), **data)
    event_time, id_column = proj.settings.event_time, proj.settings.id_column
    if event_time is None or id_column is None:
        raise InputError(f"the demo needs id_column and event_time in {directory / 'loopml.yaml'}.")
    day = _next_day(directory / "data" / "replay.parquet", event_time)
    hold = outcome.version.metrics["holdout"]
    return {
        "project_dir": str(directory),
        "seed": data["seed"],
        "rows": ingested.dataset.rows,
        "rows_quarantined": ingested.dataset.rows_quarantined,
        "model_version": outcome.version.version,
        "holdout_roc_auc": hold["roc_auc"],
        "holdout_average_precision": hold["average_precision"],
        "baseline_average_precision": outcome.version.metrics["baseline"]["average_precision"],
        "day": str(pd.Timestamp(day[event_time].iloc[0]).date()),
        **_serve_and_batch(proj, day, id_column),
        **_actions(proj),
        **_loop(proj, day, data),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def _loop(proj: Project, day: pd.DataFrame, data_options: dict[str, Any]) -> dict[str, Any]:
    """The retraining loop across the regime change for :data:`REPLAY_DAYS` days, and the loop against
    the regime oracle (simulated from ``data_options``) and the same loop without label delay (see
    :mod:`loopml.examples.fraud.loop`)."""
    frame = pd.read_parquet(proj.directory / "data" / "replay.parquet")
    api_day = int(day["tx_time_days"].iloc[0])
    change = api_day + 1  # the simulator's regime change: the day after the API's day
    last = min(api_day + REPLAY_DAYS, int(frame["tx_time_days"].max()))
    counterparts = Counterparts(proj, frame)
    try:
        # As many days of the new regime alone as the demo's history holds (days 0 to the API's day).
        counterparts.train_regime_oracle(data_options, days=api_day)
        run = replay(proj, frame, api_day, last, on_promoted=counterparts.train)
        figures, per_day = summarize(run, api_day, change)
        first = figures["promotion_day"]
        everything = pd.concat(run.scored, ignore_index=True)
        served = everything[everything["tx_time_days"] > first] if first else everything.iloc[:0]
        same = full_knowledge(proj, served, counterparts) if len(served) else None
    finally:
        counterparts.close()
    nan, steady_from = float("nan"), change + STEADY_AFTER_DAYS
    after = same.pooled() if same else {}
    steady = same.pooled(steady_from) if same else {}
    return {
        **figures,
        # Every day after the first promotion, the weeks the new pattern is young included.
        "ap_loop_same_days": after.get("loop", nan),
        "ap_regime_oracle": after.get("regime_oracle", nan),
        "loop_to_regime_oracle": after.get("to_regime_oracle", nan),
        "ap_no_label_delay": after.get("no_label_delay", nan),
        "loop_to_no_label_delay": after.get("to_no_label_delay", nan),
        "days_compared": after.get("days", 0),
        "frauds_compared": after.get("frauds", 0),
        # The steady state: from STEADY_AFTER_DAYS after the change on.
        "steady_from_day": steady_from,
        "ap_loop_steady": steady.get("loop", nan),
        "ap_regime_oracle_steady": steady.get("regime_oracle", nan),
        "loop_to_regime_oracle_steady": steady.get("to_regime_oracle", nan),
        "ap_no_label_delay_steady": steady.get("no_label_delay", nan),
        "loop_to_no_label_delay_steady": steady.get("to_no_label_delay", nan),
        "days_compared_steady": steady.get("days", 0),
        "frauds_compared_steady": steady.get("frauds", 0),
        # The "full knowledge of the new regime" is the regime oracle; judged at steady state.
        "loop_within_10pct_of_full_knowledge": bool(steady.get("to_regime_oracle", 0.0) >= 0.9),
        "loop_within_10pct_judged_on": "loop_to_regime_oracle_steady",
        "periods": same.periods if same else [],
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
            table.add_row(key.replace("_", " "), cell(value))
    console.print(table)
    _render_loop(summary)


def _render_loop(summary: dict[str, Any]) -> None:
    """The loop's before/after table, its cycles, the loop against the regime oracle and the same loop
    without label delay period by period, and the day-by-day average precision."""
    loop = Table(title="the loop across the regime change (average precision)")
    for column in ("period", "model", "average precision"):
        loop.add_column(column, justify="left" if column == "period" else "right")
    promoted = summary.get("promotion_day")
    loop.add_row("before the change", "v1", f"{summary['ap_before_change']:.4f}")
    loop.add_row("after the change", "v1 (old)", f"{summary['ap_after_change_old_model']:.4f}")
    if promoted:
        versions = [p["version"] for p in summary.get("periods", [])]
        served = "-".join(f"v{v}" for v in sorted({versions[0], versions[-1]})) if versions else "-"
        steady = summary["steady_from_day"]
        for label, model, key in (
            (f"after the first promotion (day {promoted})", served, "ap_after_promotion"),
            ("same days, rescored: the loop", served, "ap_loop_same_days"),
            ("same days: full knowledge of the new regime", "oracle", "ap_regime_oracle"),
            ("same days: no label delay", "no delay", "ap_no_label_delay"),
            (f"from day {steady} (steady): the loop", served, "ap_loop_steady"),
            (f"from day {steady}: full knowledge of the new regime", "oracle", "ap_regime_oracle_steady"),
            (f"from day {steady}: no label delay", "no delay", "ap_no_label_delay_steady"),
        ):
            loop.add_row(label, model, f"{summary[key]:.4f}")
    console.print(loop)
    periods = Table(title="each served model against the regime oracle and its no-delay counterpart")
    for column in ("model", "trained on day", "served days", "frauds", "loop", "oracle", "no delay"):
        periods.add_column(column, justify="right")
    for p in summary.get("periods", []):
        periods.add_row(
            f"v{p['version']}",
            "-" if p["trained_day"] is None else str(p["trained_day"]),
            f"{p['first_day']}-{p['last_day']}",
            str(p["frauds"]),
            f"{p['ap_loop']:.4f}",
            f"{p['ap_regime_oracle']:.4f}",
            f"{p['ap_no_label_delay']:.4f}",
        )
    if summary.get("periods"):
        console.print(periods)
    for cycle in summary.get("cycles", []):
        console.print(
            f"day {cycle['day']}: cycle {cycle['status']} (challenger v{cycle['challenger_version']}): "
            + cell("; ".join(cycle["reasons"] or cycle.get("triggers", [])))
        )
    days = Table(title="day by day")
    for column in ("day", "serving", "average precision"):
        days.add_column(column, justify="right")
    for row in summary.get("days", []):
        days.add_row(str(row["day"]), f"v{row['version']}", f"{row['ap']:.3f}")
    console.print(days)
