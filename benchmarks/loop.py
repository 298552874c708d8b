"""Benchmark: the unattended retraining loop, replayed step by step through the CLI, against three
other ways of keeping a model.

Each data set has real drift and an event time. Its oldest rows train the first model
(``loopml ingest``, ``loopml train``); then, step by step (a week of the fraud example, a month of
the retail data):

1. the champion scores the step's rows (``loopml predict``, logged like the API's predictions);
2. the labels that have come back by the step's end (``--label-delay`` steps later) are sent with
   ``loopml feedback``, and those labelled rows are dropped into the source's folder (watermarked
   on the event time);
3. ``loopml retrain`` decides by itself (the project's ``retrain:`` policy, on ``clock: event``).

Every strategy is scored on the same rows of each step, with the same point-in-time features:

- ``loop``: the champion the loop chose (the gate decides);
- ``always_refit``: each cycle's newest refit, promoted unconditionally (the newest registered
  version: a cycle registers its challenger whatever the gate says);
- ``last_window``: a model fitted at every step on the last step's labelled rows only, by the
  project's procedure (``Project.models.fit``);
- ``static``: the first model, never replaced.

The figure is the project's metric (average precision, ROC AUC) per step, averaged over the steps.
Each data set ends with the line ``loop=<a> always_refit=<b> last_window=<c> static=<d>``; the gate
must cost nothing against promoting every refit (``a >= b - 0.002``) and the loop must beat never
retraining (``a > d``).

Data sets, all offline:

- ``fraud``: the fraud example's simulator with the demo's regime change (seed 42), weekly steps from
  the day before the change, a 7-day label delay (one step); the example's ``loopml.yaml`` with the
  demo's loop settings (:data:`loopml.examples.fraud.loop.LOOP_SETTINGS`).
- ``retail``: the UCI Online Retail transactions (``../shared/data/online_retail``, real, CC BY 4.0)
  as invoices, framed as a monthly task: will the customer buy again within 30 days? Trained on
  December 2010 and January 2011, then one step per month from February to October 2011 (the
  labels of a month are all in one month later: a one-step delay). Its drift is the year's: new
  customers, the Christmas season.

Usage::

    .venv/bin/python benchmarks/loop.py [--datasets fraud,retail] [--quick] [--steps N] [--keep DIR]

``--quick``: a smaller fraud population and fewer trees (minutes on two cores); ``--steps N``: only
the first N steps of each data set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

HERE = Path(__file__).resolve().parent
LOOPML = str(Path(sys.executable).with_name("loopml"))
RETAIL = HERE.parent.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "average_precision": average_precision_score,
    "roc_auc": roc_auc_score,
}
STRATEGIES = ("loop", "always_refit", "last_window", "static")


@dataclass(frozen=True)
class Replay:
    """A data set set up as a project: the labelled history the first model learns, then the steps."""

    directory: Path
    history: pd.DataFrame
    steps: list[pd.DataFrame]
    label_delay: int  # in steps
    metric: str
    target: str
    id_column: str
    labels: tuple[str, ...]  # columns never sent for scoring


def cli(directory: Path, *args: str) -> dict[str, Any]:
    """Run ``loopml ARGS --project DIRECTORY --json``; its JSON answer (a failure stops the benchmark)."""
    done = subprocess.run(
        [LOOPML, *args, "--project", str(directory), "--json"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"loopml {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout)
    return found


# ---------------------------------------------------------------------------------------------- data


def fraud(directory: Path, quick: bool) -> Replay:
    """The fraud example across the demo's regime change, weekly steps."""
    from loopml.examples import write_example
    from loopml.examples.fraud.demo import REGIME
    from loopml.examples.fraud.loop import LABEL_COLUMNS, LOOP_SETTINGS

    options = {**REGIME, "seed": 42, **({"n_customers": 400, "n_terminals": 2_500} if quick else {})}
    write_example("fraud", directory, **options)
    history = pd.read_parquet(directory / "data" / "transactions.parquet")
    later = pd.read_parquet(directory / "data" / "replay.parquet")
    (directory / "data" / "transactions.parquet").unlink()
    (directory / "data" / "replay.parquet").unlink()
    config = yaml.safe_load((directory / "loopml.yaml").read_text())
    for section, values in LOOP_SETTINGS.items():
        config[section] = {**(config.get(section) or {}), **values}
    config["source"]["path"] = "data/rows"
    # The demo's triggers, scaled to this population: about five days of labels, or half a day's
    # since an alert (the demo's 1,500 is for its full population; its weekly schedule is replaced by
    # the label count, so that every strategy here steps on the same evidence).
    per_day = len(later) / later["tx_time_days"].nunique()
    config["retrain"].pop("schedule", None)
    config["retrain"].update(new_labels=int(5 * per_day), after_alert_labels=int(per_day / 2))
    config.pop("actions", None)  # no case tool listening here
    if quick:
        config["train"]["params"] = {**config["train"].get("params", {}), "n_estimators": 60}
    _write_config(directory, config)
    first = int(later["tx_time_days"].min())
    steps = [later[(later["tx_time_days"] - first) // 7 == k] for k in range(8)]
    return Replay(directory, history, [s for s in steps if len(s)], 1, "average_precision", "tx_fraud",
                  "transaction_id", tuple(LABEL_COLUMNS))  # fmt: skip


def invoices(path: Path = RETAIL) -> pd.DataFrame:
    """The retail transactions as one row per purchase invoice of a known customer, with the label:
    does the customer buy again within 30 days?"""
    raw = pd.read_parquet(path)
    raw = raw[~raw["InvoiceNo"].str.startswith("C") & (raw["Quantity"] > 0) & (raw["UnitPrice"] > 0)]
    raw = raw.dropna(subset=["CustomerID"]).assign(value=lambda f: f["Quantity"] * f["UnitPrice"])
    grouped = raw.groupby("InvoiceNo", sort=False)
    frame = pd.DataFrame(
        {
            "invoice_id": grouped["InvoiceNo"].first(),
            "invoice_time": grouped["InvoiceDate"].min(),
            "customer_id": grouped["CustomerID"].first().astype(int).astype(str),
            "country": grouped["Country"].first(),
            "lines": grouped.size(),
            "items": grouped["Quantity"].sum(),
            "value": grouped["value"].sum().round(2),
        }
    ).reset_index(drop=True)
    frame = frame.sort_values("invoice_time", kind="stable").reset_index(drop=True)
    following = frame.groupby("customer_id")["invoice_time"].shift(-1)
    frame["buys_again_30d"] = ((following - frame["invoice_time"]) <= pd.Timedelta(days=30)).astype(int)
    return frame


def retail(directory: Path, quick: bool) -> Replay:
    """Online Retail invoices, monthly steps from February to October 2011."""
    frame = invoices()
    month = frame["invoice_time"].dt.to_period("M")
    history = frame[month <= pd.Period("2011-01", "M")]
    steps = [frame[month == pd.Period(f"2011-{m:02d}", "M")] for m in range(2, 11)]
    (directory / "data").mkdir(parents=True)
    _write_config(directory, _retail_config(60 if quick else 150))
    return Replay(
        directory, history, steps, 1, "roc_auc", "buys_again_30d", "invoice_id", ("buys_again_30d",)
    )


def _retail_config(trees: int) -> dict[str, Any]:
    return {
        "name": "retail_repeat",
        "task": "binary",
        "source": {"kind": "parquet", "path": "data/rows", "watermark": "invoice_time"},
        "target": "buys_again_30d",
        "id_column": "invoice_id",
        "event_time": "invoice_time",
        "features": {
            "drop": ["customer_id"],
            "windows": [
                {
                    "entity": "customer_id",
                    "column": "value",
                    "aggs": ["count", "mean"],
                    "windows": ["30d", "90d", "365d"],
                },
                # the customer's own past: did they come back before? (known 30 days later)
                {
                    "entity": "customer_id",
                    "column": "buys_again_30d",
                    "aggs": ["mean"],
                    "windows": ["365d"],
                    "label_delay": "30d",
                },
            ],
        },
        "train": {"metric": "roc_auc", "holdout_fraction": 0.2, "params": {"n_estimators": trees}},
        "monitor": {"window": "7d", "performance_floor": {"roc_auc": 0.6}},
        "retrain": {"new_labels": 500, "after_alert_labels": 300, "clock": "event", "cooldown": "7d"},
    }


def _write_config(directory: Path, config: dict[str, Any]) -> None:
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


DATASETS: dict[str, Callable[[Path, bool], Replay]] = {"fraud": fraud, "retail": retail}


# -------------------------------------------------------------------------------------------- replay


def run(replay: Replay, max_steps: int | None) -> dict[str, Any]:
    """Replay ``replay`` through the CLI; every strategy's metric per step and their means."""
    from loopml.project import Project

    d, steps = replay.directory, replay.steps[:max_steps]
    rows = d / "data" / "rows"
    rows.mkdir(parents=True, exist_ok=True)
    replay.history.to_parquet(rows / "step-000.parquet", index=False)
    cli(d, "ingest")
    cli(d, "train")
    proj = Project.open(d)
    known = pd.concat([replay.history, *steps], ignore_index=True)
    features = proj.predictions.point_in_time(known, ref=1)  # every model on the same feature rows
    score = METRICS[replay.metric]
    table: list[dict[str, Any]] = []
    served: list[pd.DataFrame] = []
    for t, step in enumerate(steps):
        started = time.perf_counter()
        proj = Project.open(d)
        champion = proj.models.alias("champion") or 1
        newest = max(v.version for v in proj.models.versions())
        window = _last_window(proj, replay, steps, t)
        scores = features.score(step, ref=champion, others={"last_window": window} if window else None)
        figures = {
            "loop": scores["score"],
            "always_refit": features.score(step, ref=newest)["score"],
            "last_window": scores["last_window"] if window else features.score(step, ref=1)["score"],
            "static": features.score(step, ref=1)["score"],
        }
        y = step[replay.target].to_numpy()
        served.append(_served(replay, step, t))
        entry = {
            "step": t,
            "rows": len(step),
            "positives": int(y.sum()),
            "champion": champion,
            "newest": newest,
        }
        entry |= {name: float(score(y, s.to_numpy())) for name, s in figures.items()}
        # as served (rows outside the data contract are quarantined, not scored)
        entry["loop_served"] = float(score(served[-1][replay.target], served[-1]["score"]))
        entry["retrain"] = _end_of_step(replay, steps, served, t)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        table.append(entry)
        _print_step(entry)
    means = {name: float(np.mean([e[name] for e in table])) for name in (*STRATEGIES, "loop_served")}
    return {"steps": table, "means": means}


def _last_window(proj: Any, replay: Replay, steps: list[pd.DataFrame], t: int) -> Any:
    """A model fitted on the newest step whose labels are all in by the start of step ``t`` (the
    labels of step ``t - 1 - label_delay``; None before there is one)."""
    labelled = t - replay.label_delay - 1
    if labelled < 0:
        return None
    return proj.models.fit(steps[labelled].reset_index(drop=True))


def _served(replay: Replay, step: pd.DataFrame, t: int) -> pd.DataFrame:
    """``loopml predict``: the champion scores the step's rows (logged); the scores with their labels."""
    d = replay.directory / "steps"
    d.mkdir(exist_ok=True)
    step.drop(columns=list(replay.labels)).to_parquet(d / f"in-{t:03d}.parquet", index=False)
    cli(
        replay.directory,
        "predict",
        "-i",
        str(d / f"in-{t:03d}.parquet"),
        "-o",
        str(d / f"out-{t:03d}.parquet"),
    )
    scored = pd.read_parquet(d / f"out-{t:03d}.parquet")[["prediction_id", replay.id_column, "score"]]
    labels = step[[replay.id_column, replay.target]]
    return scored.merge(labels, on=replay.id_column, validate="one_to_one")


def _end_of_step(replay: Replay, steps: list[pd.DataFrame], served: list[pd.DataFrame], t: int) -> str:
    """The labels that came back by now (``loopml feedback``), their rows into the source, and
    ``loopml retrain``; what the policy did."""
    back = t + 1 - replay.label_delay  # the steps whose labels are in by the end of step t
    if back > 0:
        done = served[back - 1]
        path = replay.directory / "steps" / f"labels-{back - 1:03d}.parquet"
        done[["prediction_id"]].assign(label=done[replay.target]).to_parquet(path, index=False)
        cli(replay.directory, "feedback", "-i", str(path))
        steps[back - 1].to_parquet(
            replay.directory / "data" / "rows" / f"step-{back:03d}.parquet", index=False
        )
    result = cli(replay.directory, "retrain")
    status = result.get("status", "")
    if result.get("ran"):
        why = "; ".join(result.get("reasons") or []) if status != "promoted" else ""
        return f"{status} v{result.get('challenger_version')}" + (f" ({why})" if why else "")
    return f"{status}: {result.get('skipped_because') or ''}"


def _print_step(entry: dict[str, Any]) -> None:
    figures = " ".join(f"{name}={entry[name]:.4f}" for name in (*STRATEGIES, "loop_served"))
    print(
        f"  step {entry['step']}: {entry['rows']:,} rows, {entry['positives']:,} positive, champion "
        f"v{entry['champion']}, newest v{entry['newest']}: {figures} ({entry['seconds']} s); then "
        f"{entry['retrain'][:160]}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="fraud,retail")
    parser.add_argument("--quick", action="store_true", help="smaller fraud population, fewer trees")
    parser.add_argument("--steps", type=int, default=None, help="only the first N steps of each data set")
    parser.add_argument("--keep", type=Path, default=None, help="keep the projects in this folder")
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown data set(s) {unknown}; choose from {sorted(DATASETS)}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="loopml-loop-"))
    try:
        for name in names:
            print(f"== {name} ==", flush=True)
            replay = DATASETS[name](root / name, args.quick)
            found = run(replay, args.steps)
            means = found["means"]
            print(f"  mean {replay.metric} over {len(found['steps'])} steps (loop as served: "
                  f"{means['loop_served']:.4f})")  # fmt: skip
            print(" ".join(f"{s}={means[s]:.4f}" for s in STRATEGIES), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
