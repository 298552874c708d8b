"""Binary classification: split, metrics, candidate models and the baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from loopml._optional import require
from loopml.errors import DataError

__all__ = ["CANDIDATES", "baseline", "candidate", "metrics", "precision_at_k", "time_split"]

CANDIDATES = ("lightgbm", "hist_gradient_boosting", "logistic")


def time_split(
    frame: pd.DataFrame, event_time: str | None, holdout_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and holdout parts.

    With an event-time column the holdout is the latest ``holdout_fraction`` of rows, cut at a
    timestamp so that no instant is on both sides; without one it is the last rows in file order.
    """
    n = len(frame)
    if n < 10:
        raise DataError(f"only {n} rows to train on; need at least 10.")
    if event_time is None:
        cut = round(n * (1 - holdout_fraction))
        positions = np.arange(n)
        return positions[:cut], positions[cut:]
    times = pd.to_datetime(frame[event_time]).to_numpy()
    boundary = np.sort(times)[int(n * (1 - holdout_fraction))]
    train, holdout = np.flatnonzero(times < boundary), np.flatnonzero(times >= boundary)
    if len(train) == 0 or len(holdout) == 0:
        raise DataError(f"cannot split on '{event_time}': every row has the same time.")
    return train, holdout


def precision_at_k(y_true: np.ndarray, score: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest scores (the daily-investigation budget view).

    Examples
    --------
    >>> precision_at_k(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.7]), 2)
    1.0
    """
    k = min(k, len(score))
    top = np.argsort(-score, kind="stable")[:k]
    return float(np.mean(y_true[top])) if k else float("nan")


def metrics(y_true: np.ndarray, score: np.ndarray, *, k: int = 100) -> dict[str, float]:
    """ROC AUC, average precision and precision at k (NaN where one class is missing)."""
    y = np.asarray(y_true).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, score)) if both else float("nan"),
        f"precision_at_{k}": precision_at_k(y, np.asarray(score), k),
        "positive_rate": float(np.mean(y)) if len(y) else float("nan"),
    }


def candidate(name: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    """A fresh, unfitted estimator for the candidate ``name``."""
    if name == "lightgbm":
        lgb = require("lightgbm", "training LightGBM models")
        defaults = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "verbose": -1, "n_jobs": 2}
        return lgb.LGBMClassifier(**{**defaults, **params, "random_state": seed})
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(**{**params, "random_state": seed})
    if name == "logistic":
        return LogisticRegression(**{"max_iter": 1000, **params, "random_state": seed})
    raise ValueError(f"unknown candidate '{name}'; valid: {', '.join(CANDIDATES)}")


def baseline() -> BaseEstimator:
    """The dummy model every candidate must beat: predicts the training positive rate."""
    return DummyClassifier(strategy="prior")
