"""Multiclass classification: metrics, candidates, baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from loopml.enums import TaskKind
from loopml.errors import DataError
from loopml.tasks import binary
from loopml.tasks.base import Task
from loopml.tasks.labels import class_label

__all__ = ["TASK", "metrics"]

CANDIDATES = binary.CANDIDATES


def labels(y: pd.Series) -> np.ndarray:
    """Class labels as given (ints or strings); at least two classes."""
    values = y.to_numpy()
    if len(np.unique(values)) < 2:
        raise DataError(f"multiclass target '{y.name}' has fewer than two classes.")
    return values


def metrics(y_true: np.ndarray, proba: np.ndarray, *, classes: np.ndarray, **_: Any) -> dict[str, float]:
    """Accuracy, macro F1, log loss and one-vs-rest ROC AUC from class probabilities."""
    predicted = classes[np.argmax(proba, axis=1)]
    present = len(np.unique(y_true)) == len(classes)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1_macro": float(f1_score(y_true, predicted, average="macro", labels=classes, zero_division=0)),
        "log_loss": float(log_loss(y_true, np.clip(proba, 1e-15, 1), labels=classes)),
        "roc_auc_ovr": float(roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
        if present
        else float("nan"),
    }


def predict(model: Any, X: Any, **kwargs: Any) -> np.ndarray:
    proba: np.ndarray = model.predict_proba(X, **kwargs)
    return proba


def outputs(scores: np.ndarray, *, classes: Any = None, threshold: float = 0.5) -> list[dict[str, Any]]:
    """``label``, ``probabilities`` per class, and ``score`` (the label's probability)."""
    names = [c.item() if hasattr(c, "item") else c for c in classes]
    return [
        {
            "score": float(row.max()),
            "label": names[int(row.argmax())],
            "probabilities": {str(c): float(p) for c, p in zip(names, row, strict=True)},
        }
        for row in scores
    ]


def output_schema(classes: Any = None) -> dict[str, Any]:
    """The JSON Schema of :func:`outputs`' rows: the label is one of ``classes``."""
    names = [c.item() if hasattr(c, "item") else c for c in (classes if classes is not None else [])]
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    label: dict[str, Any] = {"enum": names} if names else {}
    probabilities = {
        "type": "object",
        "properties": {str(c): probability for c in names},
        "required": [str(c) for c in names],
        "description": "The probability of each class.",
    }
    properties = {"score": {**probability, "description": "The label's probability."}, "label": label}
    return {
        "properties": {**properties, "probabilities": probabilities},
        "required": [*properties, "probabilities"],
    }


TASK = Task(
    name=TaskKind.MULTICLASS,
    primary="f1_macro",
    greater_is_better=True,
    candidates=CANDIDATES,
    labels=labels,
    metrics=metrics,
    make_candidate=binary.candidate,  # the same classifiers; LightGBM and sklearn handle k classes
    make_baseline=lambda: DummyClassifier(strategy="prior"),
    predict=predict,
    outputs=outputs,
    output_schema=output_schema,
    numeric_labels=False,
    score_bounds=(0.0, 1.0),
    stratify=True,
    lgb_metric="multi_logloss",
    reference="lightgbm_default",
    profile_prediction="categorical",
    check_label=class_label,
)
