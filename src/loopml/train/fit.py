"""Fitting a model on a data snapshot and judging it honestly.

The newest rows (by event time) are the holdout, never seen while fitting or tuning. The training
part is split again by time: the choice between candidates (:mod:`loopml.train.select`), tuning and
the decision threshold use its newest slice, then the final model is refitted on the whole training
part and scored once on the holdout, against the dummy baseline, with bootstrap confidence
intervals. Sanity warnings (:mod:`loopml.train.sanity`) are recorded beside the metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from loopml._durations import duration
from loopml.config import Settings
from loopml.errors import ConfigError, DataError, did_you_mean
from loopml.features import FeatureColumns, select_columns, window_features, window_specs
from loopml.tasks import Task, crossed_group, get_task, time_split
from loopml.tasks.base import LIGHTGBM_MODELS
from loopml.train import evaluate
from loopml.train.derived import derived_features
from loopml.train.distributed import fit_pipeline
from loopml.train.sanity import SanityWarning, sanity_warnings
from loopml.train.select import Choice, Rows, choose
from loopml.train.tune import TuneResult
from loopml.validate.contract import DataContract

__all__ = ["LOWER_IS_BETTER", "HoldoutAfter", "TrainResult", "fit", "primary_metric"]

LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier", "mase", "wape", "smape"})


@dataclass(frozen=True)
class TrainResult:
    """A fitted pipeline with what the registry records about it."""

    pipeline: Pipeline
    columns: FeatureColumns
    metrics: dict[str, Any]
    params: dict[str, Any]
    holdout: pd.DataFrame = field(repr=False)
    holdout_output: np.ndarray = field(repr=False)
    holdout_labels: np.ndarray = field(repr=False)
    importance: dict[str, float] = field(default_factory=dict)
    tuning: TuneResult | None = None
    warnings: tuple[SanityWarning, ...] = ()

    @property
    def input_columns(self) -> list[str]:
        """Raw columns a scoring request must carry."""
        return list(self.columns.inputs)

    @property
    def threshold(self) -> float | None:
        value = self.metrics.get("threshold")
        return float(value) if value is not None else None


@dataclass(frozen=True)
class HoldoutAfter:
    """A challenger's holdout, for a fair gate: only rows newer than ``cutoff`` (the newest event
    time the champion learned from), the newest ``share`` of them at most (and at most
    ``train.holdout_fraction`` of all rows), so that its judged fit learns from the older new rows."""

    cutoff: pd.Timestamp
    share: float


def primary_metric(settings: Settings, task: Task) -> tuple[str, bool]:
    """The metric that ranks models and whether greater is better."""
    name = settings.train.metric or task.primary
    return name, name not in LOWER_IS_BETTER


@dataclass(frozen=True)
class _Data:
    frame: pd.DataFrame
    X: pd.DataFrame
    y: np.ndarray
    train: np.ndarray
    holdout: np.ndarray
    fit: np.ndarray
    valid: np.ndarray


def _holdout_fraction(frame: pd.DataFrame, settings: Settings, after: HoldoutAfter | None) -> float:
    """``train.holdout_fraction``, or with ``after`` the share of rows that keeps the holdout among
    the rows newer than ``after.cutoff`` (see :class:`HoldoutAfter`)."""
    fraction = settings.train.holdout_fraction
    if after is None or settings.event_time is None:
        return fraction
    newer = int((pd.to_datetime(frame[settings.event_time]) > after.cutoff).sum())
    size = min(int(len(frame) * fraction), int(newer * after.share))
    if size < 1:
        raise DataError(
            f"no row is newer than {after.cutoff} (the champion's training data) to judge a challenger on; "
            "add newer data."
        )
    # the plain split when it fits among the newer rows (the same rows as a champion's on the same data)
    return fraction if size == int(len(frame) * fraction) else size / len(frame)


def _prepare(
    frame: pd.DataFrame,
    contract: DataContract,
    settings: Settings,
    task: Task,
    after: HoldoutAfter | None = None,
) -> tuple[_Data, FeatureColumns]:
    if settings.target not in frame.columns:
        raise ConfigError(
            f"target '{settings.target}' is not in the data; {did_you_mean(settings.target, frame.columns)}"
        )
    target = frame[settings.target]
    if target.isna().any():
        raise DataError(f"target column '{settings.target}' has {int(target.isna().sum())} missing values.")
    y = task.labels(target)
    columns = select_columns(contract, settings.features)
    specs = window_specs(settings.features)
    frame = frame.reset_index(drop=True)
    if specs:
        assert settings.event_time is not None  # select_columns checked it
        frame = pd.concat(
            [frame, window_features(frame, specs, settings.event_time, settings.id_column)], axis=1
        )
    cfg, strat = settings.train, y if task.stratify else None
    if cfg.group_column is not None and cfg.group_column not in frame.columns:
        raise ConfigError(
            f"train.group_column '{cfg.group_column}' is not in the data; "
            f"{did_you_mean(cfg.group_column, frame.columns)}"
        )
    groups = frame[cfg.group_column].to_numpy() if cfg.group_column else None
    fraction = _holdout_fraction(frame, settings, after)
    train, holdout = time_split(frame, settings.event_time, fraction, strat, cfg.seed, groups)
    if cfg.window is not None and settings.event_time is not None:  # fit on the newest rows only
        times = pd.to_datetime(frame[settings.event_time])
        newest = times.iloc[train].max() if len(train) else times.max()
        train = train[(times.iloc[train] >= newest - duration(cfg.window)).to_numpy()]
        if not len(train):
            raise DataError(f"train.window {cfg.window} leaves no row to train on; make it longer.")
    inner_fit, inner_valid = time_split(
        frame.iloc[train],
        settings.event_time,
        cfg.validation_fraction,
        None if strat is None else y[train],
        cfg.seed,
        None if groups is None else groups[train],
    )
    data = _Data(frame, frame[columns.all], y, train, holdout, train[inner_fit], train[inner_valid])
    return data, columns


def _metrics_fn(task: Task, settings: Settings, classes: np.ndarray | None) -> evaluate.Metrics:
    k = settings.train.precision_at_k

    def compute(y: np.ndarray, output: np.ndarray) -> dict[str, float]:
        return task.metrics(y, output, k=k, classes=classes)

    return compute


def fit(
    frame: pd.DataFrame,
    contract: DataContract,
    settings: Settings,
    *,
    storage: str | None = None,
    client: Any = None,
    refit: bool = False,
    holdout_after: HoldoutAfter | None = None,
) -> TrainResult:
    """Fit, tune (when configured), choose the threshold, and evaluate on the time-ordered holdout.

    With ``train.dask`` set (or an open ``distributed.Client`` as ``client``), LightGBM trains on the
    Dask cluster and tuning trials run on its workers (:mod:`loopml.train.distributed`).

    ``refit`` (a time split only): once judged, the returned pipeline is fitted again on every row,
    the holdout's newest ones included, as the retraining loop promotes it. The metrics stay those
    of the fit that never saw the holdout; ``metrics["refit"]`` records the rows and the newest time
    the served pipeline learned from (a later gate judges it only on rows newer than that).
    ``metrics["cutoff"]`` is that newest time in every case (the training rows' without a refit).

    ``holdout_after`` (a challenger's fit): the holdout holds only rows newer than the champion's
    cutoff (see :class:`HoldoutAfter`).
    """
    task = get_task(settings.task)
    if task.trainer is not None:
        return _fit_custom(task, frame, settings)
    cfg = settings.train
    if cfg.dask and client is None and (cfg.model in LIGHTGBM_MODELS or cfg.tune.trials):
        from loopml._dask import dask_client

        with dask_client(cfg.dask, "train.dask") as opened:
            return fit(
                frame,
                contract,
                settings,
                storage=storage,
                client=opened,
                refit=refit,
                holdout_after=holdout_after,
            )
    metric, greater = primary_metric(settings, task)
    data, columns = _prepare(frame, contract, settings, task, holdout_after)
    rows = Rows(data.X, data.y, data.fit, data.valid)
    choice = choose(task, settings, rows, columns, metric, greater, storage=storage, client=client)
    columns, validation = choice.columns, choice.validation
    started = time.perf_counter()
    pipeline = _fit_final(task, settings, data, choice, data.train, client)
    seconds = time.perf_counter() - started
    classes = getattr(pipeline, "classes_", None)
    compute = _metrics_fn(task, settings, classes)
    output = task.predict(pipeline, data.X.iloc[data.holdout])
    y_hold = data.y[data.holdout]
    dummy = task.make_baseline().fit(data.X.iloc[data.train], data.y[data.train])
    holdout_metrics = compute(y_hold, output)
    baseline_metrics = compute(y_hold, task.predict(dummy, data.X.iloc[data.holdout]))
    metrics: dict[str, Any] = {
        "task": task.name,
        "metric": metric,
        "greater_is_better": greater,
        "score": holdout_metrics.get(metric),
        "baseline_score": baseline_metrics.get(metric),
        "holdout": holdout_metrics,
        "baseline": baseline_metrics,
        "validation": validation,
        "holdout_ci": evaluate.bootstrap_ci(y_hold, output, compute, n=cfg.bootstrap, seed=cfg.seed),
        "rows_train": len(data.train),
        "rows_holdout": len(data.holdout),
        "fit_seconds": round(seconds, 3),
    }
    if metric not in holdout_metrics:
        raise ConfigError(
            f"train.metric '{metric}' is not a {task.name} metric; {did_you_mean(metric, holdout_metrics)}"
        )
    metrics.update(_extras(task, settings, data, output, compute, validation))
    if choice.selection:
        metrics["selection"] = choice.selection
    metrics["derived_features"] = derived_features(settings, columns)  # what the defaults added, and how off
    warnings = sanity_warnings(task, settings, data.frame, columns, data.train, data.holdout, data.y)
    metrics["warnings"] = [w.to_dict() for w in warnings]
    if cfg.cv_folds:
        metrics["cv"] = _cross_validate(task, settings, data, choice, metric)
    if cfg.group_column and not settings.event_time:  # which groups it held out (a later gate needs it)
        groups = data.frame[cfg.group_column]
        crossed = crossed_group(groups, cfg.holdout_fraction, cfg.seed)  # with very few groups
        metrics["split"] = {
            "group_column": cfg.group_column,
            "holdout_fraction": cfg.holdout_fraction,
            "seed": cfg.seed,
            **({"crossed": crossed} if crossed is not None else {}),
        }
    if settings.event_time:
        times = pd.to_datetime(data.frame[settings.event_time])
        metrics["holdout_start"] = str(times.iloc[data.holdout].min())
        metrics["cutoff"] = str(times.iloc[data.train].max())  # the judged fit's newest row
        if holdout_after is not None:
            metrics["holdout_after"] = str(holdout_after.cutoff)
    tuning = choice.tuning
    if tuning is not None:
        metrics["tuning"] = {
            "study": tuning.study_name,
            "trials": len(tuning.trials),
            "best_validation": tuning.best_score,
        }
    if refit and settings.event_time and len(data.holdout):
        every = np.concatenate([data.train, data.holdout])
        pipeline = _fit_final(task, settings, data, choice, every, client)
        newest = pd.to_datetime(data.frame[settings.event_time]).iloc[every].max()
        metrics["refit"] = {"rows": len(every), "through": str(newest)}
        metrics["cutoff"] = str(newest)  # the served pipeline's newest row
    return TrainResult(
        pipeline,
        columns,
        metrics,
        _jsonable({"model": choice.model, **choice.params}),
        data.frame.iloc[data.holdout].reset_index(drop=True),
        output,
        y_hold,
        _importance(pipeline),
        tuning,
        tuple(warnings),
    )


def fit_served(
    frame: pd.DataFrame, contract: DataContract, settings: Settings, *, refit: bool = False
) -> Pipeline:
    """The pipeline ``fit(frame, contract, settings, refit=refit)`` returns, without judging it: one
    fit instead of three (no holdout metrics; no validation fit unless candidates are compared). For
    comparisons that need only the served model (the fraud demo's no-label-delay counterparts of the
    loop's models). With tuning, a custom trainer or Dask the parameters come from the full
    procedure: it runs."""
    task, cfg = get_task(settings.task), settings.train
    if task.trainer is not None or cfg.tune.trials or cfg.dask:
        return fit(frame, contract, settings, refit=refit).pipeline
    data, columns = _prepare(frame, contract, settings, task)
    metric, greater = primary_metric(settings, task)
    rows = Rows(data.X, data.y, data.fit, data.valid)
    choice = choose(task, settings, rows, columns, metric, greater, judge=False)
    positions = data.train
    if refit and settings.event_time and len(data.holdout):
        positions = np.concatenate([data.train, data.holdout])
    return _fit_final(task, settings, data, choice, positions, None)


def _fit_final(
    task: Task, settings: Settings, data: _Data, choice: Choice, rows: np.ndarray, client: Any
) -> Pipeline:
    """A fresh ``features -> model`` pipeline of the chosen candidate, fitted on ``rows``."""
    estimator = task.candidate(choice.model, choice.params, settings.train.seed)
    pipeline = Pipeline([("features", clone(choice.preprocessor)), ("model", estimator)])
    return fit_pipeline(pipeline, data.X.iloc[rows], data.y[rows], client)


def _fit_custom(task: Task, frame: pd.DataFrame, settings: Settings) -> TrainResult:
    """A task with its own trainer (forecast): its rows, backtest and metrics, in a TrainResult."""
    assert task.trainer is not None
    out = task.trainer(frame, settings)
    metric, greater = primary_metric(settings, task)
    holdout, baseline = out.metrics["holdout"], out.metrics["baseline"]
    if metric not in holdout:
        raise ConfigError(
            f"train.metric '{metric}' is not a {task.name} metric; {did_you_mean(metric, holdout)}"
        )
    metrics: dict[str, Any] = {
        "task": task.name,
        "metric": metric,
        "greater_is_better": greater,
        "score": holdout[metric],
        "baseline_score": baseline.get(metric),
        **out.metrics,
    }
    columns = FeatureColumns(numeric=out.features, categorical=(), datetime=(), inputs=out.inputs)
    return TrainResult(
        out.pipeline,
        columns,
        metrics,
        _jsonable(out.params),
        out.holdout,
        out.holdout_output,
        out.holdout_labels,
        out.importance,
    )


def _extras(
    task: Task,
    settings: Settings,
    data: _Data,
    output: np.ndarray,
    compute: evaluate.Metrics,
    validation: dict[str, Any],
) -> dict[str, Any]:
    y = data.y[data.holdout]
    extras: dict[str, Any] = {}
    if task.positive_class:
        threshold = validation["threshold"]["threshold"]
        extras["threshold"] = threshold
        extras["confusion"] = evaluate.confusion(y, output, threshold)
        costs = settings.train.costs
        extras["holdout_cost"] = (
            costs.false_negative * extras["confusion"]["fn"]
            + costs.false_positive * extras["confusion"]["fp"]
        )
        extras["calibration"] = evaluate.calibration(y, output)
    if settings.train.segments:
        frame = data.frame.iloc[data.holdout]
        extras["segments"] = evaluate.segment_metrics(frame, settings.train.segments, y, output, compute)
    return extras


def _cross_validate(
    task: Task, settings: Settings, data: _Data, choice: Choice, metric: str
) -> dict[str, Any]:
    """Expanding-window cross-validation over the training part, in time order."""
    from sklearn.model_selection import TimeSeriesSplit

    scores = []
    # cv_folds + 1 expanding splits, less the first (trained on the oldest sliver only): cv_folds folds.
    splits = list(TimeSeriesSplit(n_splits=settings.train.cv_folds + 1).split(data.train))[1:]
    for fit_idx, test_idx in splits:
        if len(fit_idx) < 10:
            continue
        rows_fit, rows_test = data.train[fit_idx], data.train[test_idx]
        model = Pipeline(
            [
                ("features", clone(choice.preprocessor)),
                ("model", task.candidate(choice.model, choice.params, settings.train.seed)),
            ]
        )
        model.fit(data.X.iloc[rows_fit], data.y[rows_fit])
        classes = getattr(model, "classes_", None)
        out = task.predict(model, data.X.iloc[rows_test])
        scores.append(
            task.metrics(data.y[rows_test], out, k=settings.train.precision_at_k, classes=classes)[metric]
        )
    return {
        "folds": scores,
        "mean": float(np.nanmean(scores)) if scores else None,
        "std": float(np.nanstd(scores)) if scores else None,
    }


def _importance(pipeline: Pipeline) -> dict[str, float]:
    """Feature importance: LightGBM gain, or absolute linear coefficients; empty otherwise."""
    model = pipeline[-1]
    try:
        names = [str(n) for n in pipeline[:-1].get_feature_names_out()]
    except (AttributeError, ValueError):
        return {}
    if hasattr(model, "booster_"):
        values = model.booster_.feature_importance(importance_type="gain")
    elif hasattr(model, "coef_"):
        values = np.abs(np.atleast_2d(model.coef_)).mean(axis=0)
    else:
        return {}
    total = float(np.sum(values)) or 1.0
    return {n: float(v) / total for n, v in sorted(zip(names, values, strict=True), key=lambda p: -p[1])}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | type(None)) else repr(v) for k, v in params.items()
    }
