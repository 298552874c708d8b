"""``loopml demo maintenance``: predictive maintenance on NASA C-MAPSS FD001, the whole loop.

Ingest the training engines (run to failure) under a contract; train and register two models on
per-engine window features with a grouped split: the remaining useful life (regression, capped at
125) and "fails within 30 cycles" (binary). Score the official test engines in batch and judge the
last cycle of each against NASA's true RUL (RMSE and the PHM08 score, next to published figures).
Then serve both over real HTTP and replay each test engine's last cycles as it runs; the true RUL
arrives as feedback, monitoring computes the realized error, and a rule opens a work order in an
SQL table when the failure probability is high. Finally the last training engines, held back so
far, arrive with their run-to-failure data: the retraining policy fires, and a cycle per model
trains a challenger, gates it against the champion on engines neither trained on (the grouped split
keeps each engine on one side for good) and promotes or rejects it, with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.table import Table

from loopml.errors import ConfigError
from loopml.examples._demo import build, cell, console, err_console, jsonable_records
from loopml.examples.maintenance import PUBLISHED, evaluate_last_cycle, last_cycles

if TYPE_CHECKING:
    from loopml.config import MaintenanceConfig
    from loopml.project import Project

__all__ = ["HOLD_BACK", "REPLAY_CYCLES", "render", "run"]

REPLAY_CYCLES = 5  # the last cycles of each test engine replayed through the API, one request each
HOLD_BACK = 20  # training engines that arrive later, with their run-to-failure data (the retrain cycle)


def _roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over positives x negatives (ties count one half; NaN
    with one class): scikit-learn's ``roc_auc_score``, computed exactly (its trapezoid sums can
    differ from it in the last bit)."""
    from scipy.stats import mannwhitneyu

    positives, negatives = score[y == 1], score[y == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    u = mannwhitneyu(positives, negatives, method="asymptotic").statistic
    return float(u / (len(positives) * len(negatives)))


def _official_test(proj: Project, failure: Project) -> dict[str, Any]:
    """Batch-score every test cycle with both models; judge each engine's last cycle against the truth."""
    data, out = proj.directory / "data", proj.directory / "demo"
    test = pd.read_parquet(data / "test_cycles.parquet")
    with err_console.status("batch-scoring the test engines ..."):
        batch = proj.predictions.predict_file(data / "test_cycles.parquet", out / "test_rul_scored.parquet")
        # Not logged: scoring history must not open work orders for cycles long past.
        failure.predictions.predict_file(
            data / "test_cycles.parquet", out / "test_failure_scored.parquet", log_predictions=False
        )
    scored = test.assign(
        rul_pred=pd.read_parquet(out / "test_rul_scored.parquet")["score"].to_numpy(),
        failure_pred=pd.read_parquet(out / "test_failure_scored.parquet")["score"].to_numpy(),
    )
    last, true, figures = _last_cycle_figures(proj, scored)
    failing = (true <= _needs(proj)[0].failure_within).astype(int)
    return {
        **figures,
        "test_failure_roc_auc": _roc_auc(failing, last["failure_pred"].to_numpy()),
        "test_engines_failing_within": int(failing.sum()),
        "batch_rows": batch.rows,
        "_last": last.set_index("engine"),
    }


def _last_cycle_figures(
    proj: Project, scored: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Each test engine's last cycle of ``scored`` (a ``rul_pred`` column), its true RUL, and the test
    figures (RMSE, PHM08 score) of the predictions clipped at the RUL cap."""
    cap = _needs(proj)[0].rul_cap
    truth = pd.read_csv(proj.directory / "data" / "test_rul.csv").set_index("engine")["rul"]
    last = last_cycles(scored)
    true = truth.loc[last["engine"]].to_numpy()
    return last, true, evaluate_last_cycle(np.clip(last["rul_pred"], 0, cap), true, cap)


def _replay_requests(test: pd.DataFrame, window: int, cycles: int) -> list[tuple[int, int, dict[str, Any]]]:
    """``(engine, cycle, body)`` for the last ``cycles`` cycles of every engine, the fleet running side
    by side (each engine's n-th last cycle before any engine's (n-1)-th); a body carries the engine's
    last ``window`` readings up to that cycle."""
    steps = []
    for engine, rows in test.sort_values(["engine", "cycle"]).groupby("engine"):
        for end in range(max(len(rows) - cycles, 0), len(rows)):
            recent = rows.iloc[max(end + 1 - window, 0) : end + 1]
            body = {"cycles": jsonable_records(recent, list(recent.columns))}
            steps.append((end - len(rows), int(str(engine)), int(rows["cycle"].iloc[end]), body))
    return [(engine, cycle, body) for _, engine, cycle, body in sorted(steps, key=lambda s: s[:2])]


def _send(
    url: str, name: str, requests: list[tuple[int, int, dict[str, Any]]]
) -> tuple[list[dict[str, Any]], list[float], int]:
    import httpx
    from rich.progress import Progress

    answers, latencies, failed = [], [], 0
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        Progress(console=err_console, transient=True) as bar,
    ):
        task = bar.add_task("replaying engines over HTTP", total=len(requests))
        for engine, cycle, body in requests:
            started = time.perf_counter()
            response = client.post(f"/v1/models/{name}/rul", json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                answers.append({"engine": engine, "cycle": cycle, **response.json()})
            else:
                failed += 1
            bar.advance(task)
    return answers, latencies, failed


def _feedback(
    url: str, answers: list[dict[str, Any]], failure_at: pd.Series, config: MaintenanceConfig
) -> int:
    """The truth, once known: each replayed cycle's RUL (capped) and whether it failed within the horizon."""
    import httpx

    labels = []
    for a in answers:
        remaining = int(failure_at[a["engine"]] - a["cycle"])
        labels.append({"prediction_id": a["prediction_ids"]["rul"], "label": min(remaining, config.rul_cap)})
        labels.append(
            {
                "prediction_id": a["prediction_ids"]["failure"],
                "label": int(remaining <= config.failure_within),
            }
        )
    response = httpx.post(f"{url}/v1/feedback", json=labels, timeout=30)
    response.raise_for_status()
    return int(response.json()["accepted"])


def _serve(
    proj: Project, official: dict[str, Any], cycles: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Replay the test engines' last cycles over real HTTP, then send the truth as feedback."""
    (config, window), data = _needs(proj), proj.directory / "data"
    test = pd.read_parquet(data / "test_cycles.parquet")
    failure_at = _failure_cycles(data)
    requests = _replay_requests(test, window, cycles)
    with proj.start_server() as server:
        answers, latencies, failed = _send(server.url, proj.name, requests)
        accepted = _feedback(server.url, answers, failure_at, config)
    last = official["_last"]
    final = [a for a in answers if a["cycle"] == last.loc[a["engine"], "cycle"]]
    batch = np.clip(last.loc[[a["engine"] for a in final], "rul_pred"].to_numpy(), 0, config.rul_cap)
    api = np.array([a["rul"] for a in final])
    return {
        "requests": len(requests),
        "failed_requests": failed,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "api_alerts": sum(a["alert"] for a in answers),
        "feedback_labels": accepted,
        "api_equals_batch": bool(len(api) == len(last) and np.array_equal(api, batch)),
    }, answers


def _failure_cycles(data: Path) -> pd.Series:
    """The cycle at which each test engine fails: its last cycle plus NASA's true RUL."""
    test = pd.read_parquet(data / "test_cycles.parquet", columns=["engine", "cycle"])
    truth = pd.read_csv(data / "test_rul.csv").set_index("engine")["rul"]
    return test.groupby("engine")["cycle"].max() + truth


def _work_orders(proj: Project) -> dict[str, Any]:
    """Deliver the actions the replay enqueued (``loopml worker`` does this in production), then read
    the work-order table back and judge each order against the engine's true failure cycle."""
    with err_console.status("delivering work orders ..."):
        proj.actions.dispatch(timeout=120)
    orders = proj.actions.sql_rows("work_orders")  # the maintenance system's table, as it holds them
    if orders.empty:
        return {"work_orders": 0, "work_orders_due": 0, "engines_due_without_order": None}
    data, within = proj.directory / "data", _needs(proj)[0].failure_within
    fails_at = _failure_cycles(data)
    remaining = fails_at.loc[orders["engine"]].to_numpy() - orders["cycle"].to_numpy()
    due = fails_at - pd.read_parquet(data / "test_cycles.parquet").groupby("engine")["cycle"].max()
    due_engines = set(due[due <= within].index)
    return {
        "work_orders": len(orders),
        "work_orders_due": int((remaining <= within).sum()),
        "engines_due_without_order": len(due_engines - set(orders["engine"])),
    }


def _monitor(proj: Project, failure: Project) -> dict[str, Any]:
    """Realized performance of both models on the replayed cycles, once their truth arrived, and the
    retraining policy's verdict on it (``loopml retrain`` then runs the cycle)."""
    rul = proj.monitor.run()
    risk = failure.monitor.run()
    return {
        "monitor_rmse": (rul.performance.get("realized") or {}).get("rmse"),
        "monitor_failure_roc_auc": (risk.performance.get("realized") or {}).get("roc_auc"),
        "monitor_labels": rul.performance.get("labels"),
        "drifted_features": len(rul.drifted_features),
        "alerts": len(rul.alerts) + len(risk.alerts),
    }


def _retrain(proj: Project, force: bool) -> dict[str, Any]:
    """The held-back engines' run-to-failure data arrive in the source; then one retraining cycle per
    model (policy, ingest, challenger, gate on engines neither model trained on, promote or reject).

    ``force``: run the cycles even when no trigger fired (``--quick`` replays too few labels)."""
    data = proj.directory / "data"
    later = pd.read_parquet(data / "later_cycles.parquet")
    arrived = pd.concat([pd.read_parquet(data / "cycles.parquet"), later], ignore_index=True)
    arrived.to_parquet(data / "cycles.parquet", index=False)  # the fleet's history, as exported
    engines = int(later["engine"].nunique())
    with err_console.status(f"{engines} engines' run-to-failure data arrived: retraining ..."):
        rul, failure = proj.retrain.run(force=force)
    out: dict[str, Any] = {"retrain_new_engines": engines}
    for prefix, result in (("retrain", rul), ("failure_retrain", failure)):
        out.update(
            {
                f"{prefix}_triggers": result.decision.reasons or (["forced"] if result.ran else []),
                f"{prefix}_status": result.status,
                f"{prefix}_reasons": result.reasons,
                f"{prefix}_gate": [c["detail"] for c in result.gate],
                f"{prefix}_challenger_version": result.challenger_version,
                f"{prefix}_champion_version": result.champion_version,
            }
        )
    if rul.challenger_version is not None:
        out.update(_challenger_on_test(proj, rul.challenger_version))
    return out


def _challenger_on_test(proj: Project, version: int) -> dict[str, Any]:
    """The RUL challenger on the official test split, as the champion was judged (for the record only:
    the gate never sees the test split)."""
    test = pd.read_parquet(proj.directory / "data" / "test_cycles.parquet")
    model = proj.models.load(version)
    _, _, figures = _last_cycle_figures(proj, test.assign(rul_pred=model.predict_frame(test, observe=False)))
    holdout = model.version.metrics
    champion = holdout.get("champion") or {}
    return {
        "challenger_test_rmse": figures["test_rmse"],
        "challenger_phm08_score": figures["phm08_score"],
        "retrain_gate_rows": champion.get("rows", holdout["rows_holdout"]),
    }


def _needs(proj: Project) -> tuple[MaintenanceConfig, int]:
    """The project's ``maintenance`` section and its window features' length (cycles)."""
    config, sequences = proj.settings.maintenance, proj.settings.features.sequences
    if config is None or sequences is None:
        raise ConfigError(f"the demo needs 'maintenance' and 'features.sequences' in {proj.project_file}.")
    return config, sequences.window


def _quick(directory: Path) -> None:
    """Fewer trees and no bootstrap: the same steps, faster (``--quick``, for tests)."""
    config = directory / "loopml.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("n_estimators: 300", "n_estimators: 50").replace("bootstrap: 50", "bootstrap: 0")
    )


def run(directory: Path, *, quick: bool = False) -> dict[str, Any]:
    """Ingest, train both models, judge on the official test split, serve, replay, monitor, act, and
    retrain when new engines arrive.

    ``quick``: 20 engines (5 of them arriving later), fewer trees, 2 replayed cycles per engine and a
    forced retraining cycle (the same steps, for tests; its test figures are not comparable with the
    published ones).
    """
    started = time.perf_counter()
    options = {"engines": 20, "hold_back": 5} if quick else {"hold_back": HOLD_BACK}
    proj, ingested, outcome = build("maintenance", directory, _quick if quick else None, **options)
    _needs(proj)
    failure, failure_outcome = proj.companions[0], outcome.companions[0]
    engines = pd.read_parquet(directory / "data" / "cycles.parquet", columns=["engine"])["engine"].nunique()
    official = _official_test(proj, failure)
    served, _ = _serve(proj, official, 2 if quick else REPLAY_CYCLES)
    metrics = outcome.version.metrics
    return {
        "project_dir": str(directory),
        "rows": ingested.dataset.rows,
        "rows_quarantined": ingested.dataset.rows_quarantined,
        "training_engines": int(engines),  # before more arrive (the retraining cycle)
        "model_version": outcome.version.version,
        "failure_model_version": failure_outcome.version.version,
        "holdout_rmse": metrics["holdout"]["rmse"],
        "holdout_baseline_rmse": metrics["baseline"]["rmse"],
        "holdout_failure_average_precision": failure_outcome.version.metrics["holdout"]["average_precision"],
        **{k: v for k, v in official.items() if not k.startswith("_")},
        "published": [{k: p[k] for k in ("model", "rmse", "phm08_score", "checked")} for p in PUBLISHED],
        **served,
        **_work_orders(proj),
        **_monitor(proj, failure),
        **_retrain(proj, force=quick),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def render(summary: dict[str, Any]) -> None:
    table = Table(title="loopml demo: maintenance (NASA C-MAPSS FD001)", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "published":
            continue
        if isinstance(value, list):
            value = "; ".join(map(str, value)) or "-"
        table.add_row(key.replace("_", " "), cell(value))
    console.print(table)
    published = Table(title="FD001 test set: this run against published models")
    for column in ("model", "RMSE", "PHM08 score"):
        published.add_column(column, justify="right" if column != "model" else "left")
    published.add_row(
        "loopml (LightGBM, window features)", f"{summary['test_rmse']:.2f}", f"{summary['phm08_score']:.1f}"
    )
    for p in summary["published"]:
        mark = "" if p.get("checked") else " *"
        published.add_row(cell(p["model"] + mark), f"{p['rmse']:.2f}", f"{p['phm08_score']:.1f}")
    console.print(published)
    if not all(p.get("checked") for p in summary["published"]):
        console.print("* as widely quoted in later papers; not checked against the original publication.")
