"""The champion against a newly trained model, on rows neither has learned from.

With an event time, only holdout rows newer than the champion's training cutoff (the newest event
time it learned from, ``metrics["cutoff"]``) are compared; with a grouped split, only the groups it
held out; a task with its own trainer says which rows with ``Task.unseen``. Both models are scored
on the same rows: the primary metric with a paired bootstrap interval of the gain, segments,
calibration (binary tasks) and the time to score a row, so that every check of the gate
(:mod:`loopml.retrain.gate`) is one model against the other, never against a fixed bar alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Settings
from loopml.features import window_specs
from loopml.registry import get_alias, get_version
from loopml.scoring import LoadedModel, load_model
from loopml.store import Store
from loopml.tasks import Task, get_task, group_sides
from loopml.train.evaluate import segment_metrics
from loopml.train.fit import TrainResult
from loopml.validate import load_snapshot

__all__ = ["UnseenRows", "champion_on", "paired_gain", "trained_through", "unseen_rows"]

Compute = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def trained_through(metrics: dict[str, Any]) -> pd.Timestamp | None:
    """The newest event time a version learned from (its served pipeline's), or None without an
    event time. Records older than ``metrics["cutoff"]``: the refit's newest row, else just before
    the holdout's first (the judged fit learned from older rows only).

    Examples
    --------
    >>> trained_through({"cutoff": "2026-05-01 10:00:00"})
    Timestamp('2026-05-01 10:00:00')
    >>> trained_through({"holdout_start": "2026-05-01"}) < pd.Timestamp("2026-05-01")
    True
    """
    if metrics.get("cutoff"):
        return pd.Timestamp(metrics["cutoff"])
    through = (metrics.get("refit") or {}).get("through")
    if through:
        return pd.Timestamp(through)
    start = metrics.get("holdout_start")
    return pd.Timestamp(start) - pd.Timedelta(1, "ns") if start else None


@dataclass(frozen=True)
class UnseenRows:
    """The rows of the latest snapshot newer than everything the champion learned from: how many,
    after which event time, and, when they are too few for the gate, why the cycle waits."""

    champion: int
    cutoff: pd.Timestamp
    rows: int
    judged: int  # the gate's holdout out of them (retrain.gate.unseen_share, train.holdout_fraction)
    needed: int
    waiting: str | None = None


def unseen_rows(settings: Settings, store: Store) -> UnseenRows | None:
    """Rows newer than the champion's training cutoff in the latest snapshot, for a cycle to decide
    whether a challenger can be judged fairly. None when that does not apply: no champion, no event
    time, a grouped split or a task with its own trainer (their holdouts say which rows are unseen).

    The gate needs ``retrain.gate.min_rows`` of them in its holdout (or the whole holdout, when
    ``train.holdout_fraction`` of the snapshot is fewer rows)."""
    version = get_alias(store.engine, settings.name, "champion")
    if version is None or settings.event_time is None or get_task(settings.task).trainer is not None:
        return None
    metrics = get_version(store.engine, settings.name, version).metrics
    cutoff = trained_through(metrics)
    if cutoff is None or metrics.get("split"):
        return None
    _, frame = load_snapshot(store, settings.name)
    times = pd.to_datetime(frame[settings.event_time])
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    gate = settings.retrain.gate
    newer = int((times > cutoff).sum())
    holdout = int(len(frame) * settings.train.holdout_fraction)
    judged, needed = min(holdout, int(newer * gate.unseen_share)), min(gate.min_rows, holdout)
    found = UnseenRows(version, cutoff, newer, judged, max(needed, 1))
    if judged >= found.needed:
        return found
    why = (
        f"waiting for data: {newer:,} rows are newer than everything champion v{version} learned from "
        f"(through {cutoff}); the gate judges a challenger on the newest {gate.unseen_share:.0%} of them "
        f"(retrain.gate.unseen_share) and needs {found.needed:,} (retrain.gate.min_rows), never on rows "
        "the champion has seen"
    )
    return UnseenRows(version, cutoff, newer, judged, found.needed, why)


def paired_gain(
    y: np.ndarray,
    mine: np.ndarray,
    theirs: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], float],
    *,
    greater: bool,
    resamples: int,
    confidence: float,
    seed: int = 0,
) -> dict[str, Any]:
    """The gain of ``mine`` over ``theirs`` (positive: better, whichever way the metric points) on
    all rows, and its paired bootstrap: both scored on the same resampled rows each time, so the
    interval reflects the difference between the models, not the spread of the rows.

    ``mean``: the expected gain (the mean over resamples; the gain on all rows without any);
    ``low``/``high``: the two-sided ``confidence`` interval.

    Examples
    --------
    >>> y = np.array([0, 1] * 50)
    >>> found = paired_gain(y, y * 0.9, y * 0.1 + 0.05, lambda t, s: float(np.mean(np.abs(t - s))),
    ...                     greater=False, resamples=50, confidence=0.9)
    >>> round(found["point"], 3), found["low"] > 0
    (0.4, True)
    """
    sign = 1.0 if greater else -1.0
    point = sign * (score(y, mine) - score(y, theirs))
    found: dict[str, Any] = {"point": float(point), "confidence": confidence, "resamples": resamples}
    if resamples == 0 or len(y) == 0:
        return {**found, "mean": float(point), "low": float(point), "high": float(point)}
    rng = np.random.default_rng(seed)
    gains = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        gains[i] = sign * (score(y[rows], mine[rows]) - score(y[rows], theirs[rows]))
    gains = gains[np.isfinite(gains)]
    if not len(gains):
        return {**found, "mean": float(point), "low": float(point), "high": float(point)}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return {**found, "mean": float(gains.mean()), "low": float(low), "high": float(high)}


def _calibration_off(y: np.ndarray, score: np.ndarray) -> float | None:
    """|mean predicted / observed rate - 1| (None without a positive)."""
    observed = float(np.mean(y)) if len(y) else 0.0
    return abs(float(np.mean(score)) / observed - 1) if observed > 0 else None


def _seconds_per_row(calls: list[Callable[[], Any]], rows: int, repeats: int = 5) -> list[float]:
    """Each call's fastest of ``repeats`` timed runs, per row; the calls take turns, so a busy spell
    of the machine slows both alike, and the fastest run is the one least disturbed."""
    best = [float("inf")] * len(calls)
    for _ in range(repeats):
        for i, call in enumerate(calls):
            started = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - started)
    return [b / max(rows, 1) for b in best]


def _latencies(
    calls: list[Callable[[], Any]], rows: int, tolerance: float, slack_us: float, retries: int = 3
) -> list[float]:
    """The champion's and the challenger's time per row (:func:`_seconds_per_row`), measured again
    while the challenger looks slower than ``retrain.gate.latency_tolerance`` allows, keeping each
    one's fastest: a busy machine slows some runs of either, seldom the fastest of many."""
    best = _seconds_per_row(calls, rows)
    for _ in range(retries):
        if best[1] <= max(best[0] * (1 + tolerance), best[0] + slack_us / 1e6):
            break
        best = [min(a, b) for a, b in zip(best, _seconds_per_row(calls, rows), strict=True)]
    return best


def _champion_inputs(settings: Settings, champion: LoadedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The champion's inputs for ``rows``: with the same window features as the challenger, the
    columns computed point-in-time from the whole snapshot (as the challenger's); else from the
    champion's own window state."""
    same = champion.version.signature.get("windows") == [asdict(s) for s in window_specs(settings.features)]
    coerced = champion.coerce(rows)
    if champion.windows and same and all(n in rows.columns for n in champion.window_names):
        return pd.concat([coerced, rows[champion.window_names].set_axis(coerced.index)], axis=1)
    return champion.features(coerced)


def champion_on(settings: Settings, store: Store, result: TrainResult) -> dict[str, Any] | None:
    """The current champion against ``result`` on the holdout rows the champion never learned from
    (None when there is no champion to compare with). With too few such rows (fewer than
    ``retrain.gate.min_rows``) no score is given: ``rows`` and ``waiting`` say why."""
    version = get_alias(store.engine, settings.name, "champion")
    if version is None:
        return None
    champion = load_model(store, settings.name, version)
    if champion.task.name != settings.task:
        return None
    task = get_task(settings.task)
    if task.trainer is not None:
        return _custom_champion_on(task, champion, result, version)
    rows, y, mine = result.holdout, result.holdout_labels, result.holdout_output
    unseen, cutoff = _unseen(settings, rows, champion.version.metrics)
    found: dict[str, Any] = {"version": version}
    if cutoff is not None:
        found["cutoff"] = str(cutoff)
    if unseen is not None:
        # By time: retrain.gate.min_rows of them (or the whole holdout, when smaller); by group: any.
        count = int(unseen.sum())
        needed = 1 if cutoff is None else max(1, min(settings.retrain.gate.min_rows, len(rows)))
        if count < needed:
            why = (
                f"{count:,} holdout rows are newer than everything champion v{version} learned from "
                f"(through {cutoff}); the gate needs {needed:,} (retrain.gate.min_rows)"
                if cutoff is not None
                else f"every holdout group was on champion v{version}'s training side"
            )
            return {**found, "rows": count, "score": None, "waiting": why}
        rows, y, mine = rows[unseen].reset_index(drop=True), y[unseen], mine[unseen]
    if cutoff is not None and len(rows) and settings.event_time:
        found["compared_from"] = str(pd.to_datetime(rows[settings.event_time]).min())
    return {**found, **_compare(settings, task, champion, result, rows, y, mine)}


def _unseen(
    settings: Settings, holdout: pd.DataFrame, champion_metrics: dict[str, Any]
) -> tuple[np.ndarray | None, pd.Timestamp | None]:
    """Which holdout rows the champion never learned from (None: every row, as far as can be known)
    and its training cutoff, when it has one."""
    groups = _unseen_groups(holdout, champion_metrics)
    if groups is not None:
        return groups, None
    cutoff = trained_through(champion_metrics)
    if cutoff is None or settings.event_time is None or settings.event_time not in holdout.columns:
        return None, None
    return (pd.to_datetime(holdout[settings.event_time]) > cutoff).to_numpy(), cutoff


def _compare(
    settings: Settings,
    task: Task,
    champion: LoadedModel,
    result: TrainResult,
    rows: pd.DataFrame,
    y: np.ndarray,
    mine: np.ndarray,
) -> dict[str, Any]:
    """Both models on the same ``rows``: metrics, the paired gain, segments, calibration, latency."""
    inputs = _champion_inputs(settings, champion, rows)
    output = task.predict(champion.pipeline, inputs)
    classes = champion.version.signature.get("classes")
    k, labels = settings.train.precision_at_k, None if classes is None else np.asarray(classes)
    metric, greater = result.metrics["metric"], result.metrics["greater_is_better"]

    def compute(y: np.ndarray, out: np.ndarray) -> dict[str, float]:
        return task.metrics(y, out, k=k, classes=labels)

    holdout = compute(y, output)
    gate = settings.retrain.gate
    found: dict[str, Any] = {
        "holdout": holdout,
        "score": holdout.get(metric),
        "rows": len(rows),
        "challenger_score": compute(y, mine).get(metric),
        "gain": paired_gain(
            y,
            mine,
            output,
            lambda t, s: compute(t, s).get(metric, float("nan")),
            greater=greater,
            resamples=gate.bootstrap,
            confidence=gate.confidence,
            seed=settings.train.seed,
        ),
    }
    if task.positive_class and np.asarray(y).dtype.kind in "biuf" and output.ndim == 1:
        found["calibration_off"] = _calibration_off(y, output)
        found["challenger_calibration_off"] = _calibration_off(y, mine)
    if len(rows):
        mine_inputs = rows[result.columns.all]
        theirs_s, mine_s = _latencies(
            [
                lambda: task.predict(champion.pipeline, inputs),
                lambda: task.predict(result.pipeline, mine_inputs),
            ],
            len(rows),
            gate.latency_tolerance,
            gate.latency_slack_us,
        )
        found.update(latency_us=1e6 * theirs_s, challenger_latency_us=1e6 * mine_s)
    if settings.train.segments:
        found["segments"] = segment_metrics(rows, settings.train.segments, y, output, compute)
        found["challenger_segments"] = segment_metrics(rows, settings.train.segments, y, mine, compute)
    return found


def _unseen_groups(holdout: pd.DataFrame, champion_metrics: dict[str, Any]) -> np.ndarray | None:
    """With a grouped split: which holdout rows belong to groups on the champion's holdout side, so
    that it never trained on them. None when the champion was not split by group.

    Groups sit on the side :func:`~loopml.tasks.base.group_sides` puts them (with the group the champion's
    split moved across, ``split["crossed"]``, when one did; older records lack it), so with the same seed
    and fraction every row qualifies; after a change of ``train.seed`` or ``holdout_fraction`` only
    the rows of groups the champion held out remain (a group it never saw but would have trained on
    is left out too: fewer rows, never a comparison biased toward the champion).
    """
    split = champion_metrics.get("split")
    if not split or split["group_column"] not in holdout.columns:
        return None
    values = holdout[split["group_column"]]
    return group_sides(values, split["holdout_fraction"], split["seed"], split.get("crossed"))


def _custom_champion_on(task: Any, champion: Any, result: TrainResult, version: int) -> dict[str, Any]:
    """A task with its own trainer: its holdout rows are model inputs already (a forecast's backtest
    rows). With ``task.unseen``, both models are scored on the rows the champion never trained on;
    when there is none, no score is given (the gate then refuses to promote on it)."""
    rows, y, mine = result.holdout, result.holdout_labels, result.holdout_output
    if task.unseen is not None:
        mask = np.asarray(task.unseen(rows, champion.version.metrics), dtype=bool)
        if not mask.any():
            why = f"every holdout row lies in champion v{version}'s training data"
            return {"version": version, "rows": 0, "score": None, "waiting": why}
        rows, y, mine = rows[mask].reset_index(drop=True), y[mask], mine[mask]
    extra = {c: rows[c].to_numpy() for c in task.metric_inputs if c in rows}
    holdout = task.metrics(y, task.predict(champion.pipeline, rows), **extra)
    metric = result.metrics["metric"]
    return {
        "version": version,
        "holdout": holdout,
        "score": holdout.get(metric),
        "rows": len(rows),
        "challenger_score": task.metrics(y, mine, **extra).get(metric),
    }
