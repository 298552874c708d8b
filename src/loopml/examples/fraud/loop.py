"""The retraining loop of ``loopml demo fraud``: replay traffic across the simulator's regime change.

Day by day the champion scores the day's transactions (batch, logged like the API's), labels come
back ``LABEL_DELAY_DAYS`` later, matured labelled rows land in the source, and the worker step runs
every day (monitor, watch, policy, cycle) on the data's clock (``retrain.clock: event``). When a
monitoring alert fires (the traffic drifted after the regime change), the next cycle runs as soon as a
day of labels of the traffic since the alert is in (``retrain.after_alert_labels``); besides, a weekly
schedule in the data's time (``retrain.schedule``) starts one, so the loop keeps learning. The gate
promotes a challenger only if it is not worse than the champion on rows neither has learned from.

Two yardsticks score the days the loop's models served, on the same rows:

* the **regime oracle** (full knowledge of the new regime): the same procedure trained on as many days
  as the demo's history, all simulated under the new pattern with another seed (no customer, terminal
  or card in common with the demo), so it knows the pattern, not this week's victims;
* each promoted model's **no-label-delay counterpart**: the same loop without label delay (trained at
  the same moment, by the same procedure, on every label up to that day). It has also seen the cards
  compromised this week, which no model with a week of label delay can know: what the delay costs.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from rich.progress import Progress
from sklearn.metrics import average_precision_score

from loopml.examples._demo import err_console
from loopml.project import Origin

if TYPE_CHECKING:
    from loopml.project import FittedModel, LoadedModel, Project

__all__ = [
    "LABEL_DELAY_DAYS",
    "LOOP_SETTINGS",
    "Comparison",
    "Counterparts",
    "Replay",
    "alert_counts",
    "ap",
    "configure",
    "full_knowledge",
    "replay",
    "summarize",
]

LABEL_DELAY_DAYS = 7  # a transaction's fraud label comes back a week later
TICK_EVERY_DAYS = 1  # the worker checks the policy daily (a cycle runs only when a trigger fires)
# The loop's policy for the demo project (merged into its loopml.yaml before the first ingest).
LOOP_SETTINGS: dict[str, Any] = {
    "source": {"watermark": "tx_datetime"},  # a cycle ingests only the rows that matured since
    "train": {"holdout_fraction": 0.025},  # at most about four days judge a challenger
    # After the change even a model that knows the new pattern reaches an average precision of about
    # 0.8 (some frauds hide in short terminal compromises), so the floors sit well under that;
    # alarms (and the watch's rollbacks) come from realized performance, labels being the proof.
    "monitor": {"performance_floor": {"average_precision": 0.15}, "estimated_floor": {}},
    "retrain": {
        "performance_floor": {"average_precision": 0.15},
        # React when the evidence is in: once a day of labels of the traffic since an alert (the
        # drift of the regime change) has come back, a cycle runs at the next daily check.
        "after_alert_labels": 1_500,
        # And the loop keeps learning: a cycle every week of the data's time, whatever its volume.
        "schedule": "0 0 * * 1",
        # A challenger learns from the newest four weeks: after the change, months of the old pattern
        # would otherwise outweigh the few weeks of the new one (the gate still judges it).
        "train_window": "28d",
        # A replay: the cooldown and the schedule are measured in the data's time.
        "clock": "event",
        "cooldown": "20h",
        # A few days of rows with a few dozen frauds judge a challenger: the interval of the gain in
        # average precision is wide (about +-0.05), so its low end may reach further than the default
        # 0.01; the challenger must still not be worse in expectation, and its refit knows newer rows.
        "gate": {"tolerance": 0.1},
        "watch": "1d",
    },
}
LABEL_COLUMNS = ("tx_fraud", "tx_fraud_scenario")
# The regime oracle's simulator seed is the demo's plus this: another population, no shared history.
ORACLE_SEED_OFFSET = 1_000


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


def replay(
    proj: Project,
    frame: pd.DataFrame,
    api_day: int,
    last_day: int,
    on_promoted: Callable[[int, int], None] | None = None,
) -> Replay:
    """Replay days ``api_day + 1 .. last_day`` of ``frame``; ``api_day`` was already served over HTTP.

    ``on_promoted(version, day)`` is called when a cycle promotes a challenger."""
    days = _by_day(frame)
    out = Replay()
    out.scored.append(_api_scored(proj, days[api_day]))
    model: LoadedModel | None = None
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("replaying days", total=last_day - api_day)
        for day in range(api_day + 1, last_day + 1):
            # as the API's model holder does between requests: the champion, swapped when the alias
            # moves, its window state learning the labels that came back as feedback
            model = proj.models.follow(model)
            out.scored.append(_score_day(proj, model, days[day]))
            _feed_labels(proj, out.scored, day)
            if (day - api_day) % TICK_EVERY_DAYS == 0:
                _mature(proj, frame, day)
                _tick(proj, day, out)
                promoted = out.cycles[-1] if out.cycles and out.cycles[-1]["day"] == day else None
                if on_promoted is not None and promoted and promoted["status"] == "promoted":
                    on_promoted(promoted["challenger_version"], day)
            bar.advance(task)
    return out


def _api_scored(proj: Project, rows: pd.DataFrame) -> pd.DataFrame:
    """The API's logged predictions of the HTTP day, with their labels (from the prediction log)."""
    logged = proj.predictions.logged(origin=Origin.API)
    id_column = proj.settings.id_column
    logged["transaction_id"] = logged["inputs"].map(lambda i: i[id_column])
    labels = rows[["transaction_id", "tx_fraud", "tx_time_days"]]
    return logged.merge(labels, on="transaction_id")[
        ["prediction_id", "transaction_id", "score", "model_version", "tx_fraud", "tx_time_days"]
    ]


def _score_day(proj: Project, model: LoadedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """Score one day in batch (logged as predictions, like the API's), labels kept aside."""
    folder = proj.directory / "demo"
    folder.mkdir(exist_ok=True)
    rows.drop(columns=list(LABEL_COLUMNS)).to_parquet(folder / "today.parquet", index=False)
    # ACTIONS SPOT (helper A1): drop ``actions=False`` here to send the replayed days' fraud cases to
    # the example receiver and card blocks to SQL, as the API's day does.
    proj.predictions.predict_file(
        folder / "today.parquet", folder / "today_scored.parquet", model=model, actions=False
    )
    scored = pd.read_parquet(folder / "today_scored.parquet")
    labels = rows[["transaction_id", "tx_fraud", "tx_time_days"]]
    return scored[["prediction_id", "transaction_id", "score", "model_version"]].merge(
        labels, on="transaction_id"
    )


def _feed_labels(proj: Project, scored: list[pd.DataFrame], day: int) -> None:
    """Labels of the day ``LABEL_DELAY_DAYS`` ago arrive (as the feedback route records them)."""
    for rows in scored:
        if len(rows) and int(rows["tx_time_days"].iloc[0]) == day - LABEL_DELAY_DAYS:
            proj.predictions.feedback(
                [
                    {"prediction_id": p, "label": int(y)}
                    for p, y in zip(rows["prediction_id"], rows["tx_fraud"], strict=True)
                ]
            )


def _mature(proj: Project, frame: pd.DataFrame, day: int) -> None:
    """Labelled transactions reach the warehouse (the source) once their labels are in."""
    source = proj.directory / "data" / "transactions.parquet"
    history = pd.read_parquet(source)
    done = history["tx_time_days"].max()
    fresh = frame[(frame["tx_time_days"] > done) & (frame["tx_time_days"] <= day - LABEL_DELAY_DAYS)]
    if len(fresh):
        pd.concat([history, fresh], ignore_index=True).to_parquet(source, index=False)


def _tick(proj: Project, day: int, out: Replay) -> None:
    """One worker step: monitor (alerts), watch the last promotion, run the policy and maybe a cycle."""
    with err_console.status(f"day {day}: monitoring, retraining policy ..."):
        step = proj.retrain.tick()
    if step.rollback is not None:
        out.rollbacks.append({"day": day, **step.rollback.to_dict()})
    result = step.cycle
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


def alert_counts(proj: Project) -> dict[str, int]:
    """Alerts the monitor recorded during the replay, by kind."""
    return {str(kind): int(count) for kind, count in proj.monitor.alert_counts().items()}


def ap(rows: pd.DataFrame, score: str = "score") -> float:
    """Average precision of ``rows`` (NaN without a fraud among them, or without every score)."""
    if rows.empty or rows["tx_fraud"].nunique() < 2 or rows[score].isna().any():
        return float("nan")
    return float(average_precision_score(rows["tx_fraud"], rows[score]))


@dataclass(frozen=True)
class Comparison:
    """The loop as it ran against the regime oracle and the same loop without label delay, on the
    same rows."""

    # transaction_id, tx_time_days, tx_fraud; the scores: ``loop``, ``regime_oracle``, ``no_label_delay``
    rows: pd.DataFrame
    periods: list[dict[str, Any]]  # one per served version: its days and the three figures

    def pooled(self, from_day: int | None = None) -> dict[str, Any]:
        """Average precision of the three, pooled over the rows from ``from_day`` on (all when None),
        the loop's ratio to each yardstick, and the days and frauds compared."""
        rows = self.rows if from_day is None else self.rows[self.rows["tx_time_days"] >= from_day]
        loop, oracle, no_delay = (ap(rows, s) for s in ("loop", "regime_oracle", "no_label_delay"))
        return {
            "loop": loop,
            "regime_oracle": oracle,
            "to_regime_oracle": loop / oracle if oracle > 0 else float("nan"),
            "no_label_delay": no_delay,
            "to_no_label_delay": loop / no_delay if no_delay > 0 else float("nan"),
            "days": int(rows["tx_time_days"].nunique()),
            "frauds": int(rows["tx_fraud"].sum()),
        }


class Counterparts:
    """The loop's yardsticks, trained by the loop's own procedure (the same settings, refitted as the
    loop's challenger is) in a background process while the replay goes on (a second core trains; a
    process, not a thread: two LightGBM fits at once in one process crashed it now and then).

    * The regime oracle (:meth:`train_regime_oracle`): trained on days simulated under the new regime
      only, with another seed.
    * The no-label-delay counterparts: for each promoted version, a model trained at the same moment
      on every labelled row up to that day (the loop knows the rows a label delay older)."""

    def __init__(self, proj: Project, frame: pd.DataFrame) -> None:
        self.directory = str(proj.directory)
        source = pd.read_parquet(proj.directory / "data" / "transactions.parquet")
        # The history the first model trained on, then every replayed row with its label.
        self.known = pd.concat([source[source["tx_time_days"] < frame["tx_time_days"].min()], frame])
        self.days: dict[int, int] = {}
        self._futures: dict[int, Future[FittedModel]] = {}
        self._oracle: Future[FittedModel] | None = None
        # spawn, not fork: a forked child of a process whose OpenMP runtime started may hang.
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def train_regime_oracle(self, data_options: dict[str, Any], days: int) -> None:
        """Start training the regime oracle on ``days`` days of the simulator run with the demo's
        ``data_options`` (the new regime's parameters among them), the new pattern from day 0 on
        (``regime_change_day=0``) and the demo's seed plus :data:`ORACLE_SEED_OFFSET`. Its window
        features come from its own simulated history, as the demo's first model's do from its."""
        from loopml.examples.fraud import SimulationConfig

        seed = int(data_options.get("seed", SimulationConfig.seed)) + ORACLE_SEED_OFFSET
        options = {**data_options, "regime_change_day": 0, "days": days, "seed": seed}
        self._oracle = self._pool.submit(_fit_regime_oracle, self.directory, options)

    def regime_oracle(self) -> FittedModel | None:
        """The regime oracle (waits for its training); None when none was started."""
        return None if self._oracle is None else self._oracle.result()

    def train(self, version: int, day: int) -> None:
        """Start training ``version``'s counterpart on every labelled row up to ``day``."""
        rows = self.known[self.known["tx_time_days"] <= day].reset_index(drop=True)
        self.days[version] = day
        # the same loop: as a cycle trains its challenger (retrain.train_window)
        self._futures[version] = self._pool.submit(_fit, self.directory, rows, True)

    def pipeline(self, version: int) -> FittedModel | None:
        """``version``'s counterpart (waits for its training); None for a version no cycle trained."""
        future = self._futures.get(version)
        return None if future is None else future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _fit(directory: str, rows: pd.DataFrame, as_challenger: bool) -> FittedModel:
    """Fit on ``rows`` by the project's procedure (in :class:`Counterparts`'s process)."""
    from loopml.project import Project

    return Project.open(directory).models.fit(rows, as_challenger=as_challenger)


def _fit_regime_oracle(directory: str, options: dict[str, Any]) -> FittedModel:
    """Simulate the regime oracle's days and fit it with the project's settings (in
    :class:`Counterparts`'s process)."""
    from loopml.examples.fraud import simulate

    return _fit(directory, simulate(**options), as_challenger=False)


def full_knowledge(proj: Project, served: pd.DataFrame, counterparts: Counterparts) -> Comparison:
    """The loop against the regime oracle and the same loop with no label delay.

    ``served``: replayed rows (``transaction_id``, ``tx_time_days``) and the ``model_version`` that
    scored each. Each version is compared with the regime oracle and its no-delay counterpart (see
    :class:`Counterparts`); a version no cycle trained (the first) already knew every label of its
    time and is its own counterpart. All score the rows the version served with point-in-time window
    features over the demo's full labelled history; average precision is pooled over all rows and
    given per period."""
    known = counterparts.known
    scored: list[pd.DataFrame] = []
    periods: list[dict[str, Any]] = []
    with err_console.status("the regime oracle ..."):
        regime_oracle = counterparts.regime_oracle()
    first_day = served.groupby("model_version")["tx_time_days"].min().sort_values()
    versions = [int(v) for v in first_day.index]
    point_in_time = proj.predictions.point_in_time(known, ref=versions[0])
    for version in versions:
        with err_console.status(f"v{version}'s no-label-delay counterpart ..."):
            no_delay = counterparts.pipeline(version)
        ids = set(served.loc[served["model_version"] == version, "transaction_id"])
        rows = known[known["transaction_id"].isin(ids)]
        others = {"regime_oracle": regime_oracle, "no_label_delay": no_delay}
        by = point_in_time.score(
            rows.drop(columns=list(LABEL_COLUMNS)),
            ref=version,
            others={name: fitted for name, fitted in others.items() if fitted is not None},
        )
        loop = by["score"].to_numpy()
        both = rows[["transaction_id", "tx_time_days", "tx_fraud"]].assign(
            loop=loop,
            regime_oracle=float("nan") if regime_oracle is None else by["regime_oracle"].to_numpy(),
            no_label_delay=loop if no_delay is None else by["no_label_delay"].to_numpy(),
        )
        scored.append(both)
        periods.append(
            {
                "version": version,
                "trained_day": counterparts.days.get(version),
                "first_day": int(both["tx_time_days"].min()),
                "last_day": int(both["tx_time_days"].max()),
                "days": int(both["tx_time_days"].nunique()),
                "frauds": int(both["tx_fraud"].sum()),
                "ap_loop": ap(both, "loop"),
                "ap_regime_oracle": ap(both, "regime_oracle"),
                "ap_no_label_delay": ap(both, "no_label_delay"),
            }
        )
    return Comparison(pd.concat(scored, ignore_index=True), periods)


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
