"""What every task provides: metrics, a split, candidate models, a baseline and a predict function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from loopml.enums import TaskKind
from loopml.errors import ConfigError, DataError
from loopml.tasks.labels import LabelSpec, finite_label

__all__ = [
    "LIGHTGBM_DEFAULTS",
    "LIGHTGBM_MODELS",
    "LIGHTGBM_RUNTIME",
    "CustomFit",
    "Task",
    "crossed_group",
    "group_in_holdout",
    "group_sides",
    "lightgbm",
    "lightgbm_default",
    "time_split",
]


# One thread: on a busy 2-core machine two OpenMP threads made a fit 8x slower (README, design notes).
LIGHTGBM_DEFAULTS: dict[str, Any] = {"n_estimators": 300, "learning_rate": 0.05, "verbose": -1, "n_jobs": 1}


def lightgbm(kind: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    """An unfitted ``LGBMClassifier`` or ``LGBMRegressor`` with loopml's defaults under ``params``."""
    from loopml._optional import require

    lgb = require("lightgbm", "training LightGBM models")
    cls = lgb.LGBMClassifier if kind == "classifier" else lgb.LGBMRegressor
    estimator: BaseEstimator = cls(**{**LIGHTGBM_DEFAULTS, **params, "random_state": seed})
    return estimator


# Parameters that set how LightGBM runs, not what it learns: the plain default candidate takes them too.
LIGHTGBM_RUNTIME = frozenset({"n_jobs", "num_threads", "nthread", "verbose", "verbosity"})
# The candidates that are LightGBM models: ``lightgbm`` (loopml's defaults) and ``lightgbm_default``.
LIGHTGBM_MODELS = frozenset({"lightgbm", "lightgbm_default"})


def lightgbm_default(kind: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    """An unfitted ``LGBMClassifier()`` or ``LGBMRegressor()`` with LightGBM's own defaults (100 trees,
    learning rate 0.1), quiet and on one thread unless ``params`` say otherwise: "doing nothing",
    the candidate the default training must never do worse than."""
    return lightgbm(kind, {"n_estimators": 100, "learning_rate": 0.1, **params}, seed)


@dataclass(frozen=True)
class CustomFit:
    """What a task with its own trainer (``Task.trainer``) returns to the generic training path.

    ``holdout`` rows are already model inputs (``pipeline.predict`` takes them as they are), with
    ``holdout_output`` the honest out-of-sample output for each (a backtest's, for forecasts).
    ``features`` are the numeric model inputs (profiled for drift); ``inputs`` the raw columns a
    request carries; ``metrics`` hold at least ``holdout`` and ``baseline`` dicts.
    """

    pipeline: Any
    metrics: dict[str, Any]
    params: dict[str, Any]
    holdout: pd.DataFrame
    holdout_output: np.ndarray
    holdout_labels: np.ndarray
    features: tuple[str, ...]
    inputs: tuple[str, ...]
    importance: dict[str, float]


@dataclass(frozen=True)
class Task:
    """One kind of prediction problem.

    ``predict`` maps a fitted estimator and features to the task's raw output: the positive-class
    probability (binary), the class-probability matrix (multiclass) or the value (regression);
    ``outputs`` maps that output to the response of each row. ``metrics`` maps labels and the output
    to named metrics; ``primary`` names the one that ranks models, and ``greater_is_better`` says
    which way. Everything that differs by task is a field here, so no other module branches on the
    task's name.
    """

    name: TaskKind
    primary: str
    greater_is_better: bool
    candidates: tuple[str, ...]
    labels: Callable[[pd.Series], np.ndarray]
    metrics: Callable[..., dict[str, float]]
    make_candidate: Callable[[str, dict[str, Any], int], BaseEstimator]
    make_baseline: Callable[[], BaseEstimator]
    # (fitted estimator, features, **estimator kwargs such as LightGBM's num_threads) -> output
    predict: Callable[..., np.ndarray]
    # (output, classes=..., threshold=...) -> one response dict per row
    outputs: Callable[..., list[dict[str, Any]]]
    stratify: bool = False
    # Whether the labels are 0/1 with a positive class (binary): a decision threshold is chosen on the
    # validation slice (minimum cost), and monitoring profiles the positives' scores apart.
    positive_class: bool = False
    # Whether labels are numbers (False: class names, as a multiclass task's are).
    numeric_labels: bool = True
    # LightGBM's own metric for early stopping while tuning (None: the task's own metric only).
    lgb_metric: str | None = None
    # The candidate that stands for "doing nothing" (a plain default model): the default training
    # also fits it and keeps it when it does better on the validation slice (None: no such candidate).
    reference: str | None = None
    # How the prediction is profiled for drift: a number, a category, or not at all (a ranking
    # holdout's output is the rank of each bought item, a served list's logged score its top item's).
    profile_prediction: Literal["numeric", "categorical"] | None = "numeric"
    # A task that answers per series (a forecast), not per row: batch scoring writes its forecasts.
    scores_series: bool = False
    # A task whose rows are not the source's rows (a forecast's series x origin x horizon) fits
    # through its own trainer: (snapshot frame, settings) -> CustomFit.
    trainer: Callable[[pd.DataFrame, Any], CustomFit] | None = None
    # Columns of the holdout (and of logged prediction inputs) that ``metrics`` takes as keyword
    # arrays, e.g. a forecast's per-series MASE scale.
    metric_inputs: tuple[str, ...] = ()
    # Which holdout rows a champion (given its registered metrics) never trained on; the champion
    # and the challenger are then compared on those rows only (a forecast's later periods).
    unseen: Callable[[pd.DataFrame, dict[str, Any]], np.ndarray] | None = None
    # What a label sent as feedback may be: (label, the version's LabelSpec) -> the label to store,
    # or a ValueError saying what was received and what is expected (see loopml.tasks.labels).
    check_label: Callable[[Any, LabelSpec], Any] = finite_label
    # The range every score lies in ((0, 1): a probability); None: unbounded (a value, a rank). The
    # API's score histogram picks its buckets from it.
    score_bounds: tuple[float, float] | None = None
    # The JSON Schema of one row's ``outputs`` (given the classes): ``{"properties", "required"}``, for
    # the API's OpenAPI document (a generated client gets typed predictions).
    output_schema: Callable[[Any], dict[str, Any]] = lambda classes: {
        "properties": {"score": {"type": "number"}},
        "required": ["score"],
    }

    def candidate(self, name: str, params: dict[str, Any], seed: int) -> BaseEstimator:
        """A fresh, unfitted estimator for the candidate ``name`` (or a ``module:Class`` of the user's)."""
        if ":" in name:
            from loopml._plugins import load_object

            estimator: BaseEstimator = load_object(name, what="train.model")(**params)
            return estimator
        if name not in self.candidates:
            raise ConfigError(
                f"train.model '{name}' is not a candidate for task '{self.name}'; "
                f"valid: {', '.join(self.candidates)}."
            )
        return self.make_candidate(name, params, seed)

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats score ``b`` on the primary metric."""
        return a > b if self.greater_is_better else a < b


def time_split(
    frame: pd.DataFrame,
    event_time: str | None,
    holdout_fraction: float,
    labels: np.ndarray | None = None,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and holdout parts.

    With an event-time column the holdout is the latest ``holdout_fraction`` of rows, cut at a
    timestamp so that no instant is on both sides. Without one: a grouped split when ``groups`` are
    given (all rows of a group on one side, e.g. one customer), else a stratified random split when
    ``labels`` are given (classification), else the last rows in file order.
    """
    n = len(frame)
    if n < 10:
        raise DataError(f"only {n} rows to train on; need at least 10.")
    if event_time is None and groups is not None:
        return _group_split(groups, holdout_fraction, seed)
    if event_time is None:
        return _no_time_split(n, holdout_fraction, labels, seed)
    times = pd.to_datetime(frame[event_time]).to_numpy()
    boundary = np.sort(times)[int(n * (1 - holdout_fraction))]
    train, holdout = np.flatnonzero(times < boundary), np.flatnonzero(times >= boundary)
    if len(train) == 0 or len(holdout) == 0:
        raise DataError(f"cannot split on '{event_time}': every row has the same time.")
    return train, holdout


def _no_time_split(
    n: int, holdout_fraction: float, labels: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    positions = np.arange(n)
    if labels is None:
        cut = round(n * (1 - holdout_fraction))
        return positions[:cut], positions[cut:]
    from sklearn.model_selection import train_test_split

    train, holdout = train_test_split(
        positions, test_size=holdout_fraction, random_state=seed, stratify=labels
    )
    return np.sort(train), np.sort(holdout)


def _group_text(values: np.ndarray | pd.Series) -> np.ndarray:
    """Each group value as the text its side is decided (and recorded) by."""
    return np.asarray(pd.Series(values).astype(str), dtype=object)


def _group_positions(values: np.ndarray | pd.Series, seed: int) -> np.ndarray:
    """A seeded hash of each value's text, as a number in [0, 1)."""
    text = _group_text(values)
    return np.asarray(pd.util.hash_array(text, hash_key=f"{seed:016d}"[-16:]) / 2.0**64, dtype=float)


def group_in_holdout(values: np.ndarray | pd.Series, holdout_fraction: float, seed: int) -> np.ndarray:
    """Whether each group value belongs to the holdout side of a grouped split.

    A group is held out when a seeded hash of its value, read as a number in [0, 1), is under
    ``holdout_fraction``: its side depends on the group alone, never on which other groups the data
    holds. So as data grows (new engines, new customers) no group moves from training to holdout,
    and a champion trained on an earlier snapshot never trained on a later challenger's holdout
    groups: both are judged on groups neither has seen. (With so few groups that one side would be
    empty, one group crosses over: see :func:`crossed_group` and :func:`group_sides`.)

    >>> engines = np.arange(1, 101)
    >>> held = group_in_holdout(engines, 0.2, seed=0)
    >>> bool((group_in_holdout(engines[:60], 0.2, seed=0) == held[:60]).all())  # fewer engines: same sides
    True
    """
    return _group_positions(values, seed) < holdout_fraction


def crossed_group(values: np.ndarray | pd.Series, holdout_fraction: float, seed: int) -> str | None:
    """The group (as text) a grouped split of all of ``values`` moves across, or None.

    When no group hashes under ``holdout_fraction`` the lowest-hashed one joins the holdout; when
    every group does, the highest-hashed one joins training. Which one depends only on the set of
    groups and the seed; the split records it (``metrics["split"]["crossed"]``) so that a later gate
    can place the groups as this split did, through :func:`group_sides`.
    """
    text = pd.unique(_group_text(values))
    if len(text) < 2:
        return None
    positions = _group_positions(text, seed)
    held = positions < holdout_fraction
    if not held.any():
        return str(text[np.argmin(positions)])
    if held.all():
        return str(text[np.argmax(positions)])
    return None


def group_sides(
    values: np.ndarray | pd.Series, holdout_fraction: float, seed: int, crossed: str | None = None
) -> np.ndarray:
    """Whether each group value is on the holdout side of a grouped split: :func:`group_in_holdout`,
    with the group ``crossed`` (from :func:`crossed_group`) on the other side. The one rule both the
    split and the gate's choice of rows a champion never trained on go by."""
    held = group_in_holdout(values, holdout_fraction, seed)
    if crossed is not None:
        held = held ^ (_group_text(values) == crossed)
    return np.asarray(held, dtype=bool)


def _group_split(groups: np.ndarray, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each group on one side, by :func:`group_sides`; with so few groups that one side would be
    empty, the group nearest the cut crosses over (:func:`crossed_group`)."""
    uniques, inverse = np.unique(groups, return_inverse=True)
    if len(uniques) < 2:
        raise DataError("cannot split by group: every row belongs to the same group.")
    crossed = crossed_group(uniques, holdout_fraction, seed)
    held = group_sides(uniques, holdout_fraction, seed, crossed)
    rows = held[inverse.ravel()]
    return np.flatnonzero(~rows), np.flatnonzero(rows)
