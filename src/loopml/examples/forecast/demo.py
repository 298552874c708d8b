"""``loopml demo forecast``: weekly demand forecasting on the Online Retail data, the whole loop.

Ingest the history under the contract, backtest and train, serve forecasts over real HTTP, write
batch forecasts to Parquet, suggest reorders where forecast demand exceeds stock, then replay the
next weeks as actual demand (incremental ingest + feedback) so the monitor scores each week, and
retrain on the longer history through the retraining cycle.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from loopml.examples._demo import build, cell, console, err_console
from loopml.project import Project

__all__ = ["render", "run"]


def _serve(proj: Project, keys: list[tuple[str, str]]) -> dict[str, Any]:
    """Ask the API for every series' forecast; show what bad input gets."""
    import httpx

    forecasts: dict[str, float] = {}
    latencies: list[float] = []
    with proj.start_server() as server, httpx.Client(base_url=server.url) as client:
        route = f"/v1/models/{proj.name}/forecast"
        for item, group in keys:
            started = time.perf_counter()
            response = client.post(route, json={"item": item, "group": group, "horizon": 4})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            for step in response.json()["steps"]:
                forecasts[f"{item}|{group}|{step['step']}"] = step["forecast"]
        bad = {
            "horizon_9": client.post(route, json={"item": keys[0][0], "horizon": 9}).status_code,
            "horizon_text": client.post(route, json={"item": keys[0][0], "horizon": "x"}).status_code,
            "unknown_item": client.post(route, json={"item": "NOPE", "horizon": 2}).status_code,
        }
    return {
        "requests": len(keys),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "bad_input_status": bad,
        "_forecasts": forecasts,
    }


def _batch(proj: Project, api: dict[str, float]) -> dict[str, Any]:
    """Every series' forecasts to Parquet through the same scoring path; compared with the API's."""
    table = proj.predictions.forecast_table()
    folder = proj.directory / "demo"
    folder.mkdir(exist_ok=True)
    table.to_parquet(folder / "forecasts.parquet", index=False)
    keys = table["item"] + "|" + table["group"] + "|" + table["horizon"].astype(int).astype(str)
    same = np.allclose([api.get(k, np.nan) for k in keys], table["forecast"].to_numpy(), rtol=1e-9)
    totals = table.groupby(["item", "group"])[["forecast", "on_hand"]].agg(
        {"forecast": "sum", "on_hand": "first"}
    )
    return {
        "batch_rows": len(table),
        "batch_file": str(folder / "forecasts.parquet"),
        "api_equals_batch": bool(same),
        "batch_series_short_of_stock": int((totals["forecast"] > totals["on_hand"]).sum()),
    }


def _reorders(proj: Project) -> dict[str, Any]:
    """Deliver the reorder actions the API's forecasts queued (as `loopml worker` would); count the
    rows the ERP table holds (the endpoint's relative SQLite path starts at the project)."""
    attempts = proj.actions.dispatch(timeout=60)
    rows = len(proj.actions.sql_rows("erp"))
    summary = proj.actions.summary().to_dict()
    outbox = {k: v for k, v in summary.items() if isinstance(v, int)}
    return {"delivery_attempts": attempts, "erp_rows": rows, "outbox": outbox}


def _replay(proj: Project) -> list[dict[str, Any]]:
    """Each later week: its lines arrive (incremental ingest), its demand is fed back as labels."""
    data = proj.directory / "data"
    weeks = []
    for path in sorted((data / "replay").glob("week-*.parquet"), key=lambda p: int(p.stem.split("-")[1])):
        shutil.copy(path, data / "lines" / path.name)
        with err_console.status(f"ingesting {path.name} and sending its actual demand ..."):
            ingested = proj.ingest()
            sent = proj.predictions.label_forecasts()
        weeks.append(
            {
                "file": path.name,
                "rows": ingested.dataset.rows,
                "complete_weeks_to": str(sent.complete_to.date()),
                "actuals_sent": sent.feedback.accepted,
            }
        )
    return weeks


def _monitor(proj: Project) -> list[dict[str, Any]]:
    report = proj.monitor.run().to_dict()
    out = []
    for window in report["history"]:
        realized = window.get("realized") or {}
        out.append(
            {
                "week": str(pd.Timestamp(window["window_start"]).date()),
                "forecasts": window["predictions"],
                "actuals": window["labels"],
                "coverage": round(window["label_coverage"], 3),
                "wape": realized.get("wape"),
                "mase": realized.get("mase"),
            }
        )
    return out


def _retrain(proj: Project) -> dict[str, Any]:
    with err_console.status("retraining on the longer history (backtest + gate) ..."):
        result = proj.retrain.run(force=True)[0]
    version = result.challenger_version
    metrics = proj.models.get(version).metrics if version else {}
    baselines = metrics.get("baselines") or {}
    return {
        "status": result.status,
        "champion_version": result.champion_version,
        "challenger_version": result.challenger_version,
        "challenger_mase": metrics.get("score"),
        "challenger_mase_naive": baselines.get("naive", {}).get("mase"),
        "challenger_mase_moving_average": baselines.get("moving_average", {}).get("mase"),
        "challenger_backtest_origins": metrics.get("backtest_origins"),
        "gate": [c["detail"] for c in result.gate],
    }


def run(directory: Path) -> dict[str, Any]:
    """Ingest, backtest, train, serve, batch, reorder, replay actuals, monitor, retrain."""
    started = time.perf_counter()
    proj, ingested, outcome = build("forecast", directory)
    metrics = outcome.version.metrics
    hold, baselines = metrics["holdout"], metrics["baselines"]
    keys = [(str(k[0]), str(k[1])) for k in metrics["keys"]]
    with err_console.status(f"asking the API for {len(keys)} series' forecasts ..."):
        served = _serve(proj, keys)
    api = served.pop("_forecasts")
    batch = _batch(proj, api)
    summary: dict[str, Any] = {
        "project_dir": str(directory),
        "lines": ingested.dataset.rows,
        "lines_quarantined": ingested.dataset.rows_quarantined,
        "series": metrics["series"],
        "weeks": metrics["periods"],
        "model_version": outcome.version.version,
        "mase": hold["mase"],
        "mase_naive": baselines["naive"]["mase"],
        "mase_moving_average": baselines["moving_average"]["mase"],
        "smape": hold["smape"],
        "smape_naive": baselines["naive"]["smape"],
        "smape_moving_average": baselines["moving_average"]["smape"],
        "wape": hold["wape"],
        "wape_naive": baselines["naive"]["wape"],
        "wape_moving_average": baselines["moving_average"]["wape"],
        "seasonal_naive": baselines["seasonal_naive"],
        "mase_gradient_boosting_only": metrics["gradient_boosting_only"]["mase"],
        "blend_weight": metrics["tuning"]["blend"],
        "tuning_origins": metrics["tuning"]["origins"],
        "backtest_origins": metrics["backtest_origins"],
        "mase_by_horizon": metrics["mase_by_horizon"],
        "vs_naive": 1 - hold["mase"] / baselines["naive"]["mase"],
        "vs_moving_average": 1 - hold["mase"] / baselines["moving_average"]["mase"],
        **served,
        **batch,
        "reorders": _reorders(proj),
        "replay": _replay(proj),
    }
    summary["monitor"] = _monitor(proj)
    summary["retrain"] = _retrain(proj)
    summary["elapsed_s"] = round(time.perf_counter() - started, 1)
    return summary


def render(summary: dict[str, Any]) -> None:
    table = Table(title="loopml demo: forecast (weekly demand, backtest over 8 origins x 4 weeks)")
    table.add_column("metric")
    for column in ("model", "naive", "4-week moving average"):
        table.add_column(column, justify="right")
    for metric in ("mase", "smape", "wape"):
        table.add_row(
            metric.upper(),
            *(f"{summary[k]:.4f}" for k in (metric, f"{metric}_naive", f"{metric}_moving_average")),
        )
    console.print(table)
    weeks = Table(title="forecast error as actual weeks arrive (monitor)")
    for column in ("week", "forecasts", "actuals", "coverage", "WAPE", "MASE"):
        weeks.add_column(column, justify="right")
    for w in summary["monitor"]:
        weeks.add_row(
            cell(w["week"]), str(w["forecasts"]), str(w["actuals"]), f"{w['coverage']:.0%}",
            *(f"{w[k]:.4f}" if w[k] is not None else "-" for k in ("wape", "mase")),
        )  # fmt: skip
    console.print(weeks)
    rest = {
        k: v
        for k, v in summary.items()
        if k not in {"monitor", "mase_by_horizon", "replay"}
        and not isinstance(v, dict)
        and k.split("_")[0] not in {"mase", "smape", "wape"}
    }
    other = Table(show_header=False)
    other.add_column("what")
    other.add_column("value", justify="right")
    for key, value in rest.items():
        other.add_row(key.replace("_", " "), cell(value))
    for key in ("reorders", "retrain"):
        for sub, value in summary[key].items():
            other.add_row(f"{key} {sub}".replace("_", " "), cell(value))
    console.print(other)
