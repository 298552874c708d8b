"""Binary classification: metrics, candidates (logistic, HistGradientBoosting, LightGBM with loopml's
or its own defaults), baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from loopml.enums import TaskKind
from loopml.errors import DataError
from loopml.tasks.base import Task, lightgbm, lightgbm_default, time_split
from loopml.tasks.labels import binary_label

__all__ = [
    "CANDIDATES",
    "TASK",
    "average_precision",
    "baseline",
    "candidate",
    "metrics",
    "precision_at_k",
    "roc_auc",
    "time_split",
]

# lightgbm_default: LightGBM with its own defaults, the yardstick of the default training (last, as an
# alternative rather than a choice most users make).
CANDIDATES = ("lightgbm", "hist_gradient_boosting", "logistic", "lightgbm_default")


def labels(y: pd.Series) -> np.ndarray:
    """0/1 labels; anything else is a :class:`DataError` naming the values found."""
    values = np.unique(y.to_numpy())
    if len(values) != 2 or not set(values.tolist()) <= {0, 1}:
        raise DataError(f"binary target '{y.name}' must hold 0/1 values; found {values[:5].tolist()}.")
    return y.to_numpy().astype(int)


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


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half), as scikit-learn computes it."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision over distinct thresholds, as scikit-learn defines it (no interpolation)."""
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    ranked, labels = score[order], y[order]
    cut = np.r_[ranked[1:] != ranked[:-1], True]
    tp, fp = np.cumsum(labels)[cut], np.cumsum(1 - labels)[cut]
    precision, recall = tp / (tp + fp), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def metrics(y_true: np.ndarray, score: np.ndarray, *, k: int = 100, **_: Any) -> dict[str, float]:
    """ROC AUC, average precision, precision at k, Brier score and log loss (NaN with one class).

    Plain NumPy, so that bootstrap intervals over many resamples stay cheap.
    """
    y = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    if len(y) == 0:
        return dict.fromkeys(
            ("roc_auc", "average_precision", f"precision_at_{k}", "brier", "log_loss", "positive_rate"),
            float("nan"),
        )
    clipped = np.clip(score, 1e-15, 1 - 1e-15)
    return {
        "roc_auc": roc_auc(y, score),
        "average_precision": average_precision(y, score),
        f"precision_at_{k}": precision_at_k(y, score, k),
        "brier": float(np.mean((clipped - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "positive_rate": float(np.mean(y)),
    }


def candidate(name: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    """A fresh, unfitted classifier for the candidate ``name``."""
    if name == "lightgbm":
        return lightgbm("classifier", params, seed)
    if name == "lightgbm_default":
        return lightgbm_default("classifier", params, seed)
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(**{**params, "random_state": seed})
    if name == "logistic":
        return LogisticRegression(**{"max_iter": 1000, **params, "random_state": seed})
    raise ValueError(f"unknown candidate '{name}'; valid: {', '.join(CANDIDATES)}")


def baseline() -> BaseEstimator:
    """The dummy model every candidate must beat: predicts the training positive rate."""
    return DummyClassifier(strategy="prior")


def predict(model: Any, X: Any, **kwargs: Any) -> np.ndarray:
    """Probability of the positive class (``kwargs``: e.g. LightGBM's ``num_threads``)."""
    proba: np.ndarray = model.predict_proba(X, **kwargs)
    return proba[:, 1]


def outputs(scores: np.ndarray, *, classes: Any = None, threshold: float = 0.5) -> list[dict[str, Any]]:
    """``score`` and ``label``: the decision at the threshold."""
    return [{"score": float(s), "label": int(s >= threshold)} for s in scores]


def output_schema(classes: Any = None) -> dict[str, Any]:
    """The JSON Schema of :func:`outputs`' rows."""
    score = {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "description": "Probability of the positive class.",
    }
    label = {"type": "integer", "enum": [0, 1], "description": "1 when the score reaches the threshold."}
    return {"properties": {"score": score, "label": label}, "required": ["score", "label"]}


TASK = Task(
    name=TaskKind.BINARY,
    primary="average_precision",
    greater_is_better=True,
    candidates=CANDIDATES,
    labels=labels,
    metrics=metrics,
    make_candidate=candidate,
    make_baseline=baseline,
    predict=predict,
    outputs=outputs,
    output_schema=output_schema,
    stratify=True,
    positive_class=True,
    score_bounds=(0.0, 1.0),
    lgb_metric="average_precision",
    reference="lightgbm_default",
    check_label=binary_label,
)
