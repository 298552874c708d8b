"""``loopml demo recommend``: recommendations on the Online Retail purchases, the whole loop.

1. Ingest the purchases before 1 Oct 2011 under the contract (guest checkouts, cancellations and
   non-product codes go to quarantine), train: every candidate judged on items new to each customer
   after the time cut, the best on validation registered as champion.
2. Serve over real HTTP: each week of October, the customers who came back get a top-10 list at
   their first visit (unknown customers: their country's best sellers); every list is logged.
3. Feedback: the purchases of the following 7 days are each list's label (how many of its items
   the customer bought); hit rate@10 is monitored week by week. A batch job ranks every later
   purchase's item for its customer, through the same scoring function as the API.
4. Actions: each list for a known customer upserts a "next best offer" row in a CRM table (SQLite).
5. Retrain: October's purchases are ingested, a challenger is trained and gated against the
   champion on the same new purchases, and promoted if it is not worse; November is then served.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from loopml.errors import InputError
from loopml.examples._demo import cell, console, err_console
from loopml.examples.recommend import CUT, later_lines
from loopml.project import Project

__all__ = ["render", "run"]

PRODUCT_CODE = r"^\d{5}[A-Za-z]{0,2}$"


def _purchases(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines that are purchases of products by known customers (what the contract accepts)."""
    keep = (
        lines["CustomerID"].notna()
        & ~lines["InvoiceNo"].astype(str).str.startswith("C")
        & lines["StockCode"].astype(str).str.match(PRODUCT_CODE)
        & (lines["Quantity"] > 0)
    )
    out = lines[keep].copy()
    out["customer"] = out["CustomerID"].astype(np.int64).astype(str)
    return out.reset_index(drop=True)


def _build(directory: Path, until: str) -> tuple[Project, Any, Any]:
    if (directory / "loopml.yaml").exists():
        raise InputError(f"{directory} already holds a project; pass an empty --project directory.")
    with err_console.status("copying the Online Retail purchases ..."):
        proj = Project.init(directory, example="recommend", until=until)
    with err_console.status("ingesting under the contract ..."):
        ingested = proj.ingest()
    with err_console.status("training popularity, co-occurrence and ALS; judging on new items ..."):
        outcome = proj.train()
    return proj, ingested, outcome


def _visits(
    purchases: pd.DataFrame, start: pd.Timestamp, weeks: int, per_week: int, seed: int
) -> pd.DataFrame:
    """Per week, up to ``per_week`` customers who bought that week, at their first invoice of it."""
    rng = np.random.default_rng(seed)
    found = []
    for week in range(weeks):
        begin, end = start + pd.Timedelta(days=7 * week), start + pd.Timedelta(days=7 * (week + 1))
        rows = purchases[(purchases["InvoiceDate"] >= begin) & (purchases["InvoiceDate"] < end)]
        first = rows.sort_values("InvoiceDate").drop_duplicates("customer")
        pick = first.iloc[rng.permutation(len(first))[:per_week]].sort_values("InvoiceDate")
        found.append(pick.assign(week=str(begin.date())))
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def _serve(url: str, name: str, visits: pd.DataFrame) -> tuple[list[dict[str, Any]], list[float], int]:
    """Ask the API for each visit's list; returns the served lists, latencies (ms) and failures."""
    import httpx
    from rich.progress import Progress

    served, latencies, failed = [], [], 0
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        Progress(console=err_console, transient=True) as bar,
    ):
        task = bar.add_task("serving top-10 lists", total=len(visits))
        for visit in visits.itertuples():
            when = pd.Timestamp(visit.InvoiceDate).isoformat()  # type: ignore[arg-type]
            body = {"customer": visit.customer, "k": 10, "segment": visit.Country, "time": when}
            started = time.perf_counter()
            response = client.post(f"/v1/models/{name}/recommend", json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            bar.advance(task)
            if response.status_code != 200:
                failed += 1
                continue
            served.append({**response.json(), "week": visit.week, "time": visit.InvoiceDate})
    return served, latencies, failed


def _labels(served: list[dict[str, Any]], purchases: pd.DataFrame) -> list[int]:
    """How many of each list's items its customer bought in the 7 days from the list."""
    bought = purchases.groupby("customer")
    labels = []
    for lst in served:
        if lst["customer"] not in bought.groups:
            labels.append(0)
            continue
        rows = bought.get_group(lst["customer"])
        window = rows[
            (rows["InvoiceDate"] >= lst["time"]) & (rows["InvoiceDate"] < lst["time"] + timedelta(days=7))
        ]
        labels.append(len({i["item"] for i in lst["items"]} & set(window["StockCode"].astype(str))))
    return labels


def _feedback(url: str, served: list[dict[str, Any]], labels: list[int]) -> dict[str, int]:
    import httpx

    items = [{"prediction_id": s["prediction_id"], "label": y} for s, y in zip(served, labels, strict=True)]
    response = httpx.post(f"{url}/v1/feedback", json=items, timeout=60)
    response.raise_for_status()
    counts: dict[str, int] = response.json()
    return counts


def _weekly(served: list[dict[str, Any]], labels: list[int]) -> list[dict[str, Any]]:
    frame = pd.DataFrame(
        {
            "week": [s["week"] for s in served],
            "version": [s["model_version"] for s in served],
            "known": [s["known"] for s in served],
            "hits": labels,
        }
    )
    return [
        {
            "week": week,
            "model_version": int(rows["version"].iloc[-1]),
            "lists": len(rows),
            "hit_rate_at_10": float((rows["hits"] > 0).mean()),
            "hit_rate_known": float((rows.loc[rows["known"], "hits"] > 0).mean())
            if rows["known"].any()
            else None,
            "hit_rate_cold_start": float((rows.loc[~rows["known"], "hits"] > 0).mean())
            if (~rows["known"]).any()
            else None,
        }
        for week, rows in frame.groupby("week", sort=True)
    ]


def _phase(
    url: str, proj: Project, purchases: pd.DataFrame, start: pd.Timestamp, weeks: int, per_week: int
) -> dict[str, Any]:
    """Serve a few weeks over HTTP and feed the purchases of each list's next 7 days back."""
    visits = _visits(purchases, start, weeks, per_week, seed=int(start.timestamp()) % 2**31)
    served, latencies, failed = _serve(url, proj.name, visits)
    labels = _labels(served, purchases)
    counts = _feedback(url, served, labels) if served else {"accepted": 0}
    return {
        "served": served,
        "labels": labels,
        "failed": failed,
        "latencies": latencies,
        "feedback_accepted": counts.get("accepted", 0),
    }


def _batch(proj: Project, purchases: pd.DataFrame) -> dict[str, Any]:
    """Batch-score every later (customer, item) purchase: the rank the champion gave it."""
    folder = proj.directory / "demo"
    folder.mkdir(exist_ok=True)
    pairs = purchases.drop_duplicates(["customer", "StockCode"])[["CustomerID", "StockCode", "Country"]]
    pairs.to_parquet(folder / "later_pairs.parquet", index=False)
    ranked_file = folder / "later_pairs_ranked.parquet"
    result = proj.predictions.predict_file(folder / "later_pairs.parquet", ranked_file)
    ranks = pd.read_parquet(ranked_file)["score"].to_numpy(dtype=float)
    ranked = ranks[np.isfinite(ranks)]
    return {
        "batch_rows": result.rows,
        "batch_median_rank": float(np.median(ranked)) if len(ranked) else None,
        "batch_share_in_top_10": float(np.mean(ranked <= 10)) if len(ranked) else None,
    }


def _actions(proj: Project) -> dict[str, Any]:
    """Deliver the queued next-best-offer actions now (the worker would) and count the CRM rows."""
    if "crm" not in proj.settings.actions.endpoints:
        return {"actions_delivered": 0, "crm_rows": 0}
    attempts = proj.actions.dispatch(timeout=120)
    return {"actions_delivered": attempts, "crm_rows": len(proj.actions.sql_rows("crm"))}


def _retrain(proj: Project, later: pd.DataFrame, until: pd.Timestamp) -> dict[str, Any]:
    """October's raw lines land in the source folder; one retraining cycle runs on them."""
    new = later[later["InvoiceDate"] < until]
    new.to_parquet(proj.directory / "data" / "lines" / "lines-0002.parquet", index=False)
    with err_console.status("retraining: ingest October, challenger, gate ..."):
        cycle = proj.retrain.run(force=True)[0]
    summary = cycle.to_dict()
    gate = {c["check"]: c["detail"] for c in summary.get("gate", [])}
    return {
        "retrain_status": summary.get("status"),
        "retrain_promoted": summary.get("status") == "promoted",
        "challenger_version": summary.get("challenger_version"),
        "gate": gate,
    }


def _figures(metrics: dict[str, Any]) -> dict[str, Any]:
    hold, base = metrics["holdout"], metrics["baseline"]
    k = int(hold.get("k", 10))
    return {
        f"ndcg_at_{k}": hold["ndcg"],
        f"ndcg_at_{k}_popularity": base["ndcg"],
        "ndcg_ratio_to_popularity": hold["ndcg"] / base["ndcg"] if base["ndcg"] else None,
        f"ndcg_at_{k}_ci": metrics.get("holdout_ci", {}).get("ndcg"),
        f"recall_at_{k}": hold["recall"],
        f"recall_at_{k}_popularity": base["recall"],
        f"hit_rate_at_{k}": hold["hit_rate"],
        f"coverage_at_{k}": hold["coverage"],
        f"coverage_at_{k}_popularity": base["coverage"],
        "chosen_model": metrics["chosen"],
        "validation_ndcg": metrics.get("validation", {}).get("ndcg"),
        "candidates": {
            n: {key: m[key] for key in ("ndcg", "recall", "hit_rate", "coverage")}
            for n, m in metrics["candidates"].items()
        },
        "evaluation_customers": int(hold["users"]),
        "evaluation_rows": metrics["evaluation_rows"],
        "holdout_start": metrics["holdout_start"],
    }


def run(directory: Path, *, quick: bool = False, until: str | None = None) -> dict[str, Any]:
    """Ingest, train, serve over HTTP, feed purchases back, monitor, act, retrain, serve again.

    ``quick`` serves fewer weeks and customers (the same steps, for tests).
    """
    started = time.perf_counter()
    weeks, weeks_after, per_week = (2, 1, 25) if quick else (4, 2, 60)
    cut = pd.Timestamp(until or CUT)
    replan = cut + pd.Timedelta(days=7 * weeks)
    proj, ingested, outcome = _build(directory, str(cut.date()))
    later: pd.DataFrame = later_lines(str(cut.date()))  # type: ignore[assignment]
    purchases = _purchases(later)
    with proj.start_server() as server:  # `loopml serve` over real HTTP; follows the champion alias
        before = _phase(server.url, proj, purchases, cut, weeks, per_week)
        batch = _batch(proj, purchases[purchases["InvoiceDate"] < replan])
        monitor = proj.monitor.run()
        actions = _actions(proj)
        retrain = _retrain(proj, later, replan)
        time.sleep(1.5)  # the server re-reads the alias every second
        after = _phase(server.url, proj, purchases, replan, weeks_after, per_week)
    served, labels = before["served"] + after["served"], before["labels"] + after["labels"]
    latencies = before["latencies"] + after["latencies"]
    return {
        "project_dir": str(directory),
        "rows": ingested.dataset.rows,
        "rows_quarantined": ingested.dataset.rows_quarantined,
        "model_version": outcome.version.version,
        **_figures(outcome.version.metrics),
        "lists_served": len(served),
        "cold_start_lists": sum(not s["known"] for s in served),
        "failed_requests": before["failed"] + after["failed"],
        "p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies else None,
        "feedback_accepted": before["feedback_accepted"] + after["feedback_accepted"],
        "served_hit_rate_at_10": float(np.mean(np.asarray(labels) > 0)) if labels else None,
        "weekly": _weekly(served, labels),
        "monitor_alerts": len(monitor.alerts),
        **batch,
        **actions,
        **retrain,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def render(summary: dict[str, Any]) -> None:
    table = Table(title="loopml demo: recommend", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key in ("weekly", "candidates", "gate", "validation_ndcg"):
            continue
        table.add_row(key.replace("_", " "), cell(value))
    console.print(table)
    candidates = Table(title="candidates on new items (holdout)")
    for column in ("model", "NDCG@10", "recall@10", "hit rate@10", "coverage"):
        candidates.add_column(column)
    for name, m in summary["candidates"].items():
        candidates.add_row(cell(name), *(f"{m[c]:.4f}" for c in ("ndcg", "recall", "hit_rate", "coverage")))
    console.print(candidates)
    weekly = Table(title="served lists: hit rate@10 per week (purchases of the next 7 days)")
    for column in ("week", "version", "lists", "hit rate", "known", "cold start"):
        weekly.add_column(column)
    for w in summary["weekly"]:
        cells = (w["hit_rate_at_10"], w["hit_rate_known"], w["hit_rate_cold_start"])
        weekly.add_row(cell(w["week"]), str(w["model_version"]), str(w["lists"]),
                       *("-" if v is None else f"{v:.3f}" for v in cells))  # fmt: skip
    console.print(weekly)
