"""Hyper-parameter tuning with Optuna: seeded, budgeted in trials and seconds, pruned, and stored
in the metadata store so that several workers can share one study and later runs warm-start."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from sklearn.base import is_classifier

from loopml._optional import require
from loopml.config import TuneConfig
from loopml.errors import ConfigError
from loopml.tasks import Task
from loopml.tasks.base import LIGHTGBM_MODELS

__all__ = ["TuneResult", "eval_kwargs", "search_space", "tune"]

Suggest = Callable[[Any], dict[str, Any]]


MAX_TREES = 2000  # LightGBM trials stop early on the validation rows; this is only the cap


def _lightgbm(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": MAX_TREES,
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "subsample_freq": 1,
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _hist_gradient_boosting(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 128, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-4, 10.0, log=True),
        "max_iter": trial.suggest_int("max_iter", 100, 500, step=50),
    }


def _linear(trial: Any) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 1e-3, 100.0, log=True)}


def _ridge(trial: Any) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("alpha", 1e-3, 100.0, log=True)}


# Tried first, so that tuning never ends worse than the defaults.
DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "reg_lambda": 1e-3,
    },
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "l2_regularization": 1e-4,
        "max_iter": 100,
    },
    "logistic": {"C": 1.0},
    "ridge": {"alpha": 1.0},
}

DEFAULTS["lightgbm_default"] = {**DEFAULTS["lightgbm"], "learning_rate": 0.1}  # LightGBM's own

SPACES: dict[str, Suggest] = {
    "lightgbm": _lightgbm,
    "lightgbm_default": _lightgbm,  # tuned, it is LightGBM like the other: same space
    "hist_gradient_boosting": _hist_gradient_boosting,
    "logistic": _linear,
    "ridge": _ridge,
}


class _Fixed:
    """A trial whose parameters fixed in ``train.params`` are not searched (nor recorded as searched)."""

    def __init__(self, trial: Any, fixed: dict[str, Any]) -> None:
        self._trial, self._fixed = trial, fixed

    def _suggest(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        return getattr(self._trial, kind)(name, *args, **kwargs)

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._suggest("suggest_int", name, *args, **kwargs)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._suggest("suggest_float", name, *args, **kwargs)


def search_space(model: str) -> Suggest:
    """The parameter sampler for a candidate model."""
    return SPACES[model]


@dataclass(frozen=True)
class TuneResult:
    """The best parameters found, every trial's score (for the report), and the best trial's fitted
    estimator from this run (None when the best trial came from an earlier run of the study)."""

    best_params: dict[str, Any]
    best_score: float
    trials: list[dict[str, Any]]
    study_name: str
    best_estimator: Any = None


def _pruning_callback(trial: Any, optuna: Any, deadline: float, every: int = 25) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        if time.monotonic() > deadline:  # the time budget holds inside a trial too
            raise optuna.TrialPruned()
        if env.iteration % every or not env.evaluation_result_list:
            return
        _, _, value, higher_better = env.evaluation_result_list[0]
        trial.report(value if higher_better else -value, env.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned()

    return callback


@cache
def _takes_eval_x(fit: Callable[..., Any]) -> bool:
    """Whether a LightGBM ``fit`` takes ``eval_X``/``eval_y`` (4.6 and later, where ``eval_set`` is
    deprecated) rather than only ``eval_set`` (earlier versions)."""
    return "eval_X" in inspect.signature(fit).parameters


def eval_kwargs(estimator: Any, X_valid: Any, y_valid: np.ndarray, y_fit: np.ndarray) -> dict[str, Any]:
    """The keyword arguments that give a LightGBM estimator's ``fit`` its validation rows, in the form
    the installed LightGBM expects (no deprecation warning on any supported version).

    ``eval_y`` reaches the booster as it is given (LightGBM 4.7's classifier encodes ``y`` but not
    ``eval_y``), so a classifier's labels are encoded here as it encodes ``y_fit``: the index of each
    label among the sorted classes; validation rows of a class the fitting rows lack are left out.
    """
    if not _takes_eval_x(type(estimator).fit):
        return {"eval_set": [(X_valid, y_valid)]}
    if is_classifier(estimator):
        classes = np.unique(y_fit)
        known = np.isin(y_valid, classes)
        if not known.all():
            X_valid, y_valid = X_valid[known], y_valid[known]
        y_valid = np.searchsorted(classes, y_valid)
    return {"eval_X": (X_valid,), "eval_y": (y_valid,)}


def _objective(
    task: Task,
    model: str,
    fixed: dict[str, Any],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    score: Callable[[Any], float],
    seed: int,
    deadline: float,
    fitted: dict[str, Any],
    worker: str | None = None,
) -> Callable[[Any], float]:
    """The Optuna objective: fit one candidate on the fitting rows, rate it on the validation rows,
    and keep the best fitted estimator seen in ``fitted``."""
    optuna = require("optuna", "tuning")
    lgb = require("lightgbm", "tuning LightGBM") if model in LIGHTGBM_MODELS else None
    X_fit, y_fit, X_valid, y_valid = data

    def objective(trial: Any) -> float:
        if worker is not None:
            trial.set_user_attr("worker", worker)
        params = {**search_space(model)(_Fixed(trial, fixed)), **fixed}
        estimator = task.candidate(model, params, seed)
        kwargs: dict[str, Any] = {}
        grow = lgb is not None and "n_estimators" not in fixed  # a fixed tree count is kept as it is
        if lgb is not None:
            callbacks = [_pruning_callback(trial, optuna, deadline)]
            if grow:
                callbacks.insert(0, lgb.early_stopping(50, first_metric_only=True, verbose=False))
            kwargs = {
                **eval_kwargs(estimator, X_valid, y_valid, y_fit),
                "eval_metric": task.lgb_metric,
                "callbacks": callbacks,
            }
        estimator.fit(X_fit, y_fit, **kwargs)
        if grow:
            trial.set_user_attr("n_estimators", int(estimator.best_iteration_ or estimator.n_estimators))
        value = score(estimator)
        best = fitted.get("value")
        if best is None or value > best:
            fitted.update(value=value, number=trial.number, estimator=estimator)
        return value

    return objective


def _pruner(optuna: Any, config: TuneConfig) -> Any:
    return optuna.pruners.MedianPruner(n_warmup_steps=50) if config.pruning else optuna.pruners.NopPruner()


def _worker_trials(
    storage: str,
    study_name: str,
    config: TuneConfig,
    n_trials: int,
    seconds: float,
    sampler_seed: int,
    objective: dict[str, Any],
) -> int:
    """Run ``n_trials`` of a shared study on a Dask worker, with its own sampler seed; how many ran.

    ``objective`` holds :func:`_objective`'s ``task``, ``model``, ``fixed``, ``data``, ``score``, ``seed``.
    """
    optuna = require("optuna", "tuning on Dask")
    from distributed import get_worker

    logging.getLogger("optuna").setLevel(logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=_pruner(optuna, config),
    )
    deadline = time.monotonic() + seconds  # this machine's clock, not the client's
    run = _objective(**objective, deadline=deadline, fitted={}, worker=get_worker().address)
    before = len(study.trials)
    study.optimize(run, n_trials=n_trials, timeout=seconds, gc_after_trial=True)
    return len(study.trials) - before


def _wait_for_queue(study: Any, first: Any, optuna: Any, poll: float = 0.05) -> None:
    """Wait until the first worker has taken the enqueued trials (or finished): two workers taking
    the same waiting trial at once would both run it where the storage has no row locks (SQLite)."""
    waiting = (optuna.trial.TrialState.WAITING,)
    while not first.done() and study.get_trials(deepcopy=False, states=waiting):
        time.sleep(poll)


def _optimize_on_dask(
    client: Any, study: Any, storage: str, config: TuneConfig, seconds: float, objective: dict[str, Any]
) -> None:
    """Spread ``config.trials`` over the workers of ``client`` (one task pinned to each, its own
    sampler seed); the first worker starts alone, so that it alone takes the enqueued defaults."""
    optuna = require("optuna", "tuning on Dask")
    workers = sorted(client.scheduler_info().get("workers", {}))[: config.trials]
    if not workers:
        raise ConfigError("train.dask: the Dask scheduler has no workers; start some: `dask worker ADDR`.")
    shares = [config.trials // len(workers) + (i < config.trials % len(workers)) for i in range(len(workers))]
    shared = {**objective, "data": client.scatter(objective["data"], broadcast=True, hash=False)}
    seed = int(objective["seed"])
    futures = []
    for i, (worker, n) in enumerate(zip(workers, shares, strict=True)):
        args = (storage, study.study_name, config, n, seconds, seed + i, shared)
        futures.append(client.submit(_worker_trials, *args, workers=[worker], pure=False))
        if i == 0:
            _wait_for_queue(study, futures[0], optuna)
    client.gather(futures)


def tune(
    task: Task,
    model: str,
    fixed: dict[str, Any],
    config: TuneConfig,
    *,
    storage: str,
    study_name: str,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    score: Callable[[Any], float],
    seed: int,
    client: Any = None,
) -> TuneResult:
    """Search ``model``'s parameters; ``score(fitted)`` rates a fit on validation rows (higher: better).

    LightGBM trials grow trees until the validation metric stops improving (the tree count found is
    kept), are pruned against the median of earlier trials, and stop at the time budget. With a
    ``distributed.Client``, the trials run on its workers, which share the study through ``storage``
    (each trial records its ``worker``); the best estimator is then refitted by the caller.
    """
    optuna = require("optuna", "tuning")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    deadline = time.monotonic() + config.timeout_s
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=_pruner(optuna, config),
    )
    if model in DEFAULTS and not study.trials:
        defaults = {k: v for k, v in DEFAULTS[model].items() if k not in fixed}
        study.enqueue_trial(defaults, skip_if_exists=True)
    fitted: dict[str, Any] = {}
    remaining = max(deadline - time.monotonic(), 1.0)
    if client is not None:
        objective = {"task": task, "model": model, "fixed": fixed, "data": data, "score": score, "seed": seed}
        _optimize_on_dask(client, study, storage, config, remaining, objective)
    else:
        run = _objective(task, model, fixed, data, score, seed, deadline, fitted)
        study.optimize(run, n_trials=config.trials, timeout=remaining, gc_after_trial=True)
    completed = [t for t in study.trials if t.value is not None]
    if not completed:
        return TuneResult(dict(fixed), float("nan"), [], study_name)
    trials = [
        {"number": t.number, "value": t.value, "state": t.state.name, "params": t.params}
        for t in study.trials
    ]
    best = max(completed, key=lambda t: t.value)
    params = {**search_space(model)(_Fixed(optuna.trial.FixedTrial(best.params), fixed)), **fixed}
    if "n_estimators" in best.user_attrs:
        params["n_estimators"] = best.user_attrs["n_estimators"]
    estimator = fitted["estimator"] if fitted.get("number") == best.number else None
    return TuneResult(params, float(best.value), trials, study_name, estimator)
