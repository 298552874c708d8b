"""The retraining loop of ``loopml demo fraud``: replay traffic across the simulator's regime change.

Day by day the champion scores the day's transactions (batch, logged like the API's), labels come
back ``LABEL_DELAY_DAYS`` later, matured labelled rows land in the source, and once a week the worker
step runs (monitor, watch, policy, cycle). When realized average precision falls under the floor the
policy starts a cycle; the gate promotes a challenger only if it beats the champion on the newest
labelled days. A model trained with every label up to the promotion (full knowledge) is scored on the
same later days for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.progress import Progress
from sklearn.metrics import average_precision_score
from sqlalchemy import select

from loopml.cli._common import err_console

__all__ = [
    "LABEL_DELAY_DAYS",
    "LOOP_SETTINGS",
    "Replay",
    "alert_counts",
    "ap",
    "configure",
    "full_knowledge",
    "replay",
    "summarize",
]

LABEL_DELAY_DAYS = 7  # a transaction's fraud label comes back a week later
TICK_EVERY_DAYS = 7  # the worker checks the policy weekly
# The loop's policy for the demo project (merged into its loopml.yaml before the first ingest).
LOOP_SETTINGS: dict[str, Any] = {
    "source": {"watermark": "tx_datetime"},  # a cycle ingests only the rows that matured since
    "train": {"holdout_fraction": 0.05},  # the gate's "newest labelled window": about a week
    # After the change even a model that knows the new pattern reaches an average precision of about
    # 0.2 (a third of the frauds hide in short terminal compromises), so the floors sit under that;
    # alarms (and the watch's rollbacks) come from realized performance, labels being the proof.
    "monitor": {"performance_floor": {"average_precision": 0.15}, "estimated_floor": {}},
    "retrain": {"performance_floor": {"average_precision": 0.15}, "cooldown": "1s", "watch": "1d"},
}
LABEL_COLUMNS = ("tx_fraud", "tx_fraud_scenario")


def configure(directory: Path, quick: bool = False) -> None:
    """Merge :data:`LOOP_SETTINGS` into the project file (``quick``: fewer trees, for tests)."""
    path = directory / "loopml.yaml"
    config = yaml.safe_load(path.read_text())
    for section, values in LOOP_SETTINGS.items():
        config[section] = {**(config.get(section) or {}), **values}
    if quick:
        config["train"]["params"] = {**config["train"].get("params", {}), "n_estimators": 60}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Replay:
    """What happened each replayed day, and the loop's events."""

    days: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    scored: list[pd.DataFrame] = field(default_factory=list)


def _by_day(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    return {int(str(d)): rows for d, rows in frame.groupby("tx_time_days")}


def replay(proj: Any, frame: pd.DataFrame, api_day: int, last_day: int) -> Replay:
    """Replay days ``api_day + 1 .. last_day`` of ``frame``; ``api_day`` was already served over HTTP."""
    from loopml.registry import get_alias, load_model

    days = _by_day(frame)
    out = Replay()
    out.scored.append(_api_scored(proj, days[api_day]))
    model = load_model(proj.store, proj.name)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("replaying days", total=last_day - api_day)
        for day in range(api_day + 1, last_day + 1):
            champion = get_alias(proj.store.engine, proj.name, "champion")
            if model.version.version != champion:
                model = load_model(proj.store, proj.name)  # the API would swap the same way
            out.scored.append(_score_day(proj, model, days[day]))
            _feed_labels(proj, out.scored, day)
            if (day - api_day) % TICK_EVERY_DAYS == 0:
                _mature(proj, frame, day)
                _tick(proj, day, out)
            bar.advance(task)
    return out


def _api_scored(proj: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """The API's logged predictions of the HTTP day, with their labels (from the prediction log)."""
    from loopml.store import tables

    p = tables.predictions
    query = select(p.c.id, p.c.inputs, p.c.score, p.c.model_version).where(
        p.c.model_name == proj.name, p.c.origin == "api"
    )
    with proj.store.engine.connect() as conn:
        logged = pd.DataFrame(conn.execute(query).all(), columns=["prediction_id", "inputs", "score", "v"])
    id_column = proj.settings.id_column
    logged["transaction_id"] = logged["inputs"].map(lambda i: i[id_column])
    labels = rows[["transaction_id", "tx_fraud", "tx_time_days"]]
    merged = logged.merge(labels, on="transaction_id")
    return merged.rename(columns={"v": "model_version"})[
        ["prediction_id", "transaction_id", "score", "model_version", "tx_fraud", "tx_time_days"]
    ]


def _score_day(proj: Any, model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Score one day in batch (logged as predictions, like the API's), labels kept aside."""
    from loopml.batch import score_file

    folder = proj.settings.project_dir / "demo"
    folder.mkdir(exist_ok=True)
    rows.drop(columns=list(LABEL_COLUMNS)).to_parquet(folder / "today.parquet", index=False)
    # ACTIONS SPOT (helper A1): pass ``on_write=`` (the outbox hook) here to send the replayed days'
    # fraud cases to the example receiver and card blocks to SQL, as the API's day does.
    score_file(proj.store, model, folder / "today.parquet", folder / "today_scored.parquet")
    scored = pd.read_parquet(folder / "today_scored.parquet")
    labels = rows[["transaction_id", "tx_fraud", "tx_time_days"]]
    return scored[["prediction_id", "transaction_id", "score", "model_version"]].merge(
        labels, on="transaction_id"
    )


def _feed_labels(proj: Any, scored: list[pd.DataFrame], day: int) -> None:
    """Labels of the day ``LABEL_DELAY_DAYS`` ago arrive (the feedback route's store call)."""
    from loopml.store import record_feedback

    for rows in scored:
        if len(rows) and int(rows["tx_time_days"].iloc[0]) == day - LABEL_DELAY_DAYS:
            record_feedback(
                proj.store.engine,
                [
                    {"prediction_id": p, "label": int(y)}
                    for p, y in zip(rows["prediction_id"], rows["tx_fraud"], strict=True)
                ],
            )


def _mature(proj: Any, frame: pd.DataFrame, day: int) -> None:
    """Labelled transactions reach the warehouse (the source) once their labels are in."""
    source = proj.settings.project_dir / "data" / "transactions.parquet"
    history = pd.read_parquet(source)
    done = history["tx_time_days"].max()
    fresh = frame[(frame["tx_time_days"] > done) & (frame["tx_time_days"] <= day - LABEL_DELAY_DAYS)]
    if len(fresh):
        pd.concat([history, fresh], ignore_index=True).to_parquet(source, index=False)


def _tick(proj: Any, day: int, out: Replay) -> None:
    """One worker step: monitor (alerts), watch the last promotion, run the policy and maybe a cycle."""
    from loopml.retrain import tick

    with err_console.status(f"day {day}: monitoring, retraining policy ..."):
        rolled, result = tick(proj.settings, proj.store)
    if rolled:
        out.rollbacks.append({"day": day, **rolled})
    if result.ran:
        out.cycles.append(
            {
                "day": day,
                "status": result.status,
                "challenger_version": result.challenger_version,
                "champion_version": result.champion_version,
                "reasons": result.reasons,
                "triggers": result.decision.reasons,
            }
        )
        err_console.print(f"day {day}: cycle {result.status} (challenger v{result.challenger_version})")


def alert_counts(proj: Any) -> dict[str, int]:
    """Alerts the monitor recorded during the replay, by kind."""
    from sqlalchemy import func

    from loopml.store import tables

    a = tables.alerts
    with proj.store.engine.connect() as conn:
        rows = conn.execute(
            select(a.c.kind, func.count()).where(a.c.model_name == proj.name).group_by(a.c.kind)
        ).all()
    return {str(kind): int(count) for kind, count in rows}


def ap(rows: pd.DataFrame, score: str = "score") -> float:
    """Average precision of ``rows`` (NaN without a fraud among them)."""
    if rows.empty or rows["tx_fraud"].nunique() < 2:
        return float("nan")
    return float(average_precision_score(rows["tx_fraud"], rows[score]))


def full_knowledge(
    proj: Any, frame: pd.DataFrame, through_day: int, later: pd.DataFrame, version: int
) -> dict[str, float]:
    """Train on every labelled row up to ``through_day`` (no label delay; the same holdout share),
    then score the ``later`` days with it and with the loop's promoted ``version`` the same way:
    point-in-time window features over the full labelled history."""
    from loopml.features import EntityHistory
    from loopml.registry import load_model
    from loopml.train import fit
    from loopml.validate import latest_contract
    from loopml.validate.ingest import contracts_dir

    settings = proj.settings
    source = pd.read_parquet(settings.project_dir / "data" / "transactions.parquet")
    known = pd.concat([source[source["tx_time_days"] < frame["tx_time_days"].min()], frame])
    train_rows = known[known["tx_time_days"] <= through_day].reset_index(drop=True)
    contract = latest_contract(contracts_dir(settings), settings.name)
    assert contract is not None, "the project was ingested, so it has a contract"
    with err_console.status("training the full-knowledge model ..."):
        oracle = fit(train_rows, contract, settings)
    champion = load_model(proj.store, proj.name, version)
    history = EntityHistory(champion.windows, settings.event_time or "", settings.id_column)
    history.extend(champion.coerce(known).assign(tx_fraud=known["tx_fraud"].to_numpy()))
    rows = known[known["transaction_id"].isin(set(later["transaction_id"]))]
    scores = {}
    for label, pipeline in (("loop", champion.pipeline), ("full_knowledge", oracle.pipeline)):
        model = replace(champion, pipeline=pipeline, history=history)
        scored = rows.assign(score=model.predict_frame(rows.drop(columns=list(LABEL_COLUMNS)), observe=False))
        scores[label] = ap(scored)
    return scores


def summarize(run: Replay, api_day: int, change_day: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """The loop's figures and the per-day table (served average precision, which version served)."""
    everything = pd.concat(run.scored, ignore_index=True)
    per_day = (
        everything.groupby("tx_time_days")
        .apply(lambda g: pd.Series({"version": int(g["model_version"].max()), "ap": ap(g)}))
        .reset_index()
    )
    promoted = [c for c in run.cycles if c["status"] == "promoted"]
    promotion_day = promoted[0]["day"] if promoted else None
    before = everything[everything["tx_time_days"] < change_day]
    old = everything[(everything["tx_time_days"] >= change_day) & (everything["model_version"] == 1)]
    after = everything[everything["tx_time_days"] > promotion_day] if promotion_day else everything.iloc[:0]
    figures = {
        "ap_before_change": ap(before),
        "ap_after_change_old_model": ap(old),
        "ap_after_promotion": ap(after),
        "promotions": len(promoted),
        "rollbacks": len(run.rollbacks),
        "promotion_day": promotion_day,
        "replayed_days": int(everything["tx_time_days"].nunique()),
        "cycles": run.cycles,
    }
    return figures, per_day
