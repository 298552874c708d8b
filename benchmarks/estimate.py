"""The label-free performance estimate against the realized metric: loopml and NannyML's CBPE.

The fraud example's simulator with the demo's regime (:data:`loopml.examples.fraud.demo.REGIME`):
``--history`` days to train on, then traffic replayed one day at a time through the project API
(``Project.predictions.predict_file``), labels arriving ``--label-delay`` days late in one bulk file
(``feedback_file``), and ``Project.monitor.run()`` at the end of each day, as a user's daily job
would. The first ``--reference`` replayed days are the reference period (NannyML's ``reference``,
fitted with their labels); the next ``--before`` days are ordinary, then the fraud pattern changes for
``--after`` days. The champion is never retrained, so every figure is the estimator's.

Each analysis day's estimate is the one the monitor gave at the end of that day (its labels still
out), compared with the average precision realized once they are in (scikit-learn's
``average_precision_score``). NannyML (``CBPE(metrics=["average_precision"], chunk_period="D")``,
fitted on the reference period's scores and labels) runs in its own virtual environment,
``benchmarks/.venv-nannyml`` (created on first use; never a loopml dependency), on the same scores.

The last line is ``mae_loopml=<a> mae_nannyml=<b> coverage=<c> false_alerts=<n>
flagged_after_change_days=<d>``: mean absolute errors over every analysis day, before and after the
change; the share of the days before the change whose realized value lies in loopml's interval; the
alerts on the estimate before the change (on a metric whose realized value is at or over its floor,
or on reliability); and how many days after the change the estimate was first marked unreliable.

Usage: ``.venv/bin/python benchmarks/estimate.py [--history 60] [--before 14] [--after 21]
[--label-delay 7] [--seed 42] [--no-nannyml] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
NANNYML_VENV = HERE / ".venv-nannyml"
NANNYML_PINS = ["nannyml", "statsmodels", "pyarrow"]  # nannyml 0.13 imports statsmodels without requiring it
METRIC = "average_precision"


def _project(root: Path, args: argparse.Namespace) -> tuple[Any, pd.DataFrame, int]:
    """A trained fraud project on the first ``--history`` days; the replayed days; the change day."""
    import yaml

    from loopml.examples import write_example
    from loopml.examples.fraud.demo import REGIME
    from loopml.project import Project

    change = args.history + args.reference + args.before
    days = change + args.after
    write_example("fraud", root, days=days, regime_change_day=change, seed=args.seed, **REGIME)
    data = root / "data"
    frame = pd.concat([pd.read_parquet(data / n) for n in ("transactions.parquet", "replay.parquet")])
    history = frame["tx_time_days"] < args.history
    frame[history].to_parquet(data / "transactions.parquet", index=False)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(report=False)
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    project = Project.open(root)
    project.ingest()
    project.train()
    return project, frame[~history].reset_index(drop=True), change


def _label_file(scored: pd.DataFrame, folder: Path) -> Path:
    path = folder / "labels.parquet"
    scored[["prediction_id", "tx_fraud"]].rename(columns={"tx_fraud": "label"}).to_parquet(path, index=False)
    return path


def _replay(project: Any, replay: pd.DataFrame, delay: int, folder: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Score each day, send the labels of the day ``delay`` days ago, run the monitor; the scored
    rows (score, label, day) and one entry per day: the estimate and the alerts of that day's pass."""
    scored_days: dict[int, pd.DataFrame] = {}
    passes = []
    for day in sorted(replay["tx_time_days"].unique()):
        rows = replay[replay["tx_time_days"] == day]
        rows.drop(columns=["tx_fraud", "tx_fraud_scenario"]).to_parquet(folder / "day.parquet", index=False)
        project.predictions.predict_file(folder / "day.parquet", folder / "scored.parquet", actions=False)
        scored = pd.read_parquet(folder / "scored.parquet").merge(rows[["transaction_id", "tx_fraud"]])
        scored_days[int(day)] = scored.assign(day=int(day))
        if int(day) - delay in scored_days:
            project.predictions.feedback_file(_label_file(scored_days[int(day) - delay], folder))
        started = time.perf_counter()
        report = project.monitor.run()
        estimate = report.estimate
        passes.append(
            {
                "day": int(day),
                "estimate": estimate["values"][METRIC],
                "interval": estimate["intervals"][METRIC],
                "reliable": estimate["reliable"],
                "reasons": estimate["reasons"],
                "alerts": [a["subject"] for a in report.alerts if a["kind"] == "estimated_performance"],
                "seconds": time.perf_counter() - started,
            }
        )
        print(f"  day {day}: {len(rows):,} transactions, monitor {passes[-1]['seconds']:.1f} s", flush=True)
    return pd.concat(scored_days.values(), ignore_index=True), passes


def _score_column(scored: pd.DataFrame) -> str:
    found = [c for c in ("score", "probability", "prediction_score") if c in scored.columns]
    if not found:
        sys.exit(f"error: no score column in the scored file (columns: {', '.join(scored.columns)})")
    return found[0]


def _realized(scored: pd.DataFrame, score: str) -> dict[int, float]:
    from sklearn.metrics import average_precision_score

    return {
        int(day): float(average_precision_score(rows["tx_fraud"], rows[score]))
        if rows["tx_fraud"].any()
        else np.nan
        for day, rows in scored.groupby("day")
    }


def _nannyml_python() -> Path:
    python = NANNYML_VENV / "bin" / "python"
    check = [str(python), "-c", "import nannyml, statsmodels, pyarrow"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        print(f"creating {NANNYML_VENV} ({', '.join(NANNYML_PINS)}; first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(NANNYML_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *NANNYML_PINS], check=True)
    return python


def _nannyml(
    scored: pd.DataFrame, score: str, threshold: float, reference_days: list[int], work: Path
) -> dict[int, dict]:
    """NannyML's CBPE estimate per analysis day, fitted on the reference days (in its own venv)."""
    frame = pd.DataFrame(
        {
            "time": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(scored["day"], unit="D")
            + pd.to_timedelta(np.arange(len(scored)) % 86_000, unit="s"),
            "score": scored[score].to_numpy(dtype=float),
            "y_pred": (scored[score].to_numpy(dtype=float) >= threshold).astype(int),
            "label": scored["tx_fraud"].astype(int).to_numpy(),
            "day": scored["day"].to_numpy(),
        }
    )
    reference = frame["day"].isin(reference_days)
    frame[reference].to_parquet(work / "reference.parquet", index=False)
    frame[~reference].drop(columns=["label"]).to_parquet(work / "analysis.parquet", index=False)
    out = subprocess.run(
        [str(_nannyml_python()), __file__, "--nannyml-worker", str(work)], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(f"error: the NannyML worker failed:\n{out.stderr[-4000:]}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {int(k): v for k, v in found.items()}


def _nannyml_worker(work: Path) -> None:
    """Run in NannyML's venv: CBPE fitted on the reference, estimated per day of the analysis."""
    import nannyml as nml

    reference = pd.read_parquet(work / "reference.parquet")
    analysis = pd.read_parquet(work / "analysis.parquet")
    cbpe = nml.CBPE(
        y_pred_proba="score",
        y_pred="y_pred",
        y_true="label",
        timestamp_column_name="time",
        metrics=[METRIC],
        chunk_period="D",
        problem_type="classification_binary",
    )
    cbpe.fit(reference)
    result = cbpe.estimate(analysis).filter(period="analysis").to_df()
    out = {}
    for _, row in result.iterrows():
        day = int(analysis.loc[analysis["time"] >= row[("chunk", "start_date")], "day"].iloc[0])
        out[day] = {
            "estimate": float(row[(METRIC, "value")]),
            "interval": [
                float(row[(METRIC, "lower_confidence_boundary")]),
                float(row[(METRIC, "upper_confidence_boundary")]),
            ],
            "alert": bool(row[(METRIC, "alert")]),
        }
    print(json.dumps(out))


def _mae(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    errors = [abs(a - b) for a, b in pairs if np.isfinite(a) and np.isfinite(b)]
    return (float(np.mean(errors)), float(np.max(errors))) if errors else (np.nan, np.nan)


def _summary(
    passes: list[dict], realized: dict[int, float], theirs: dict[int, dict], change: int, floor: float
) -> dict[str, Any]:
    """The figures of the last line, and the same split before and after the change."""
    days = [p for p in passes if p["day"] in theirs or not theirs]
    before = [p for p in days if p["day"] < change]
    after = [p for p in days if p["day"] >= change]
    ours = {p["day"]: p["estimate"] for p in days}
    figures: dict[str, Any] = {}
    for name, part in (("", days), ("_before", before), ("_after", after)):
        figures[f"mae_loopml{name}"], figures[f"max_loopml{name}"] = _mae(
            [(ours[p["day"]], realized[p["day"]]) for p in part]
        )
        if theirs:
            figures[f"mae_nannyml{name}"], figures[f"max_nannyml{name}"] = _mae(
                [(theirs[p["day"]]["estimate"], realized[p["day"]]) for p in part]
            )
    covered = [
        p["interval"][0] <= realized[p["day"]] <= p["interval"][1]
        for p in before
        if np.isfinite(realized[p["day"]])
    ]
    figures["coverage"] = float(np.mean(covered)) if covered else np.nan
    false_metric = [p for p in before if METRIC in p["alerts"] and realized[p["day"]] >= floor]
    false_reliability = [p for p in before if "reliability" in p["alerts"] or not p["reliable"]]
    figures["false_alerts"] = len(false_metric) + len(false_reliability)
    flagged = [p["day"] for p in passes if p["day"] >= change and not p["reliable"]]
    figures["flagged_after_change_days"] = flagged[0] - change if flagged else None
    return figures


def _interval(low_high: list[float]) -> str:
    return f"[{low_high[0]:.3f}, {low_high[1]:.3f}]"


def _print_days(passes: list[dict], realized: dict[int, float], theirs: dict[int, dict], change: int) -> None:
    head = f"{'day':>4} {'realized':>8} | {'loopml':>7} {'interval':>15} {'reliable':>8} {'alerts':<28}"
    print(f"{head} | {'NannyML':>7} {'interval':>15}")
    for p in passes:
        other = theirs.get(p["day"])
        mark = " <- change" if p["day"] == change else ""
        their = "" if other is None else f"{other['estimate']:>7.3f} {_interval(other['interval'])}"
        ours = f"{p['estimate']:>7.3f} {_interval(p['interval'])} {'yes' if p['reliable'] else 'NO':>8}"
        print(
            f"{p['day']:>4} {realized[p['day']]:>8.3f} | {ours} {','.join(p['alerts']):<28} | {their}{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=60, help="days to train on")
    parser.add_argument(
        "--reference", type=int, default=7, help="replayed days of NannyML's reference period"
    )
    parser.add_argument("--before", type=int, default=14, help="ordinary days analysed before the change")
    parser.add_argument("--after", type=int, default=21, help="days of the new fraud pattern")
    parser.add_argument("--label-delay", type=int, default=7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-nannyml", action="store_true", help="loopml alone (no venv to set up)")
    parser.add_argument("--keep", type=Path, help="keep the project in this folder")
    parser.add_argument("--nannyml-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nannyml_worker:
        _nannyml_worker(args.nannyml_worker)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="loopml-estimate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _run(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> None:
    started = time.perf_counter()
    project, replay, change = _project(work / "fraud", args)
    print(
        f"trained on days 0-{args.history - 1} in {time.perf_counter() - started:.0f} s; replaying ...",
        flush=True,
    )
    scored, passes = _replay(project, replay, args.label_delay, work)
    score = _score_column(scored)
    realized = _realized(scored, score)
    reference_days = list(range(args.history, args.history + args.reference))
    threshold = float(project.models.get("champion").signature.get("threshold") or 0.5)
    theirs = {} if args.no_nannyml else _nannyml(scored, score, threshold, reference_days, work)
    passes = [p for p in passes if p["day"] not in reference_days]
    floor = float(project.settings.monitor.estimated_floor.get(METRIC, 0.0))
    _print_days(passes, realized, theirs, change)
    figures = _summary(passes, realized, theirs, change, floor)
    print(
        "figures: "
        + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    )
    print(
        f"mae_loopml={figures['mae_loopml']:.3f} mae_nannyml="
        + (f"{figures['mae_nannyml']:.3f}" if theirs else "n/a")
        + f" coverage={figures['coverage']:.2f} false_alerts={figures['false_alerts']}"
        f" flagged_after_change_days={figures['flagged_after_change_days']}"
    )


if __name__ == "__main__":
    main()
