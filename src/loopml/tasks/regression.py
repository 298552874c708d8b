"""Regression: metrics, candidates (ridge, HistGradientBoosting, LightGBM with loopml's or
its own defaults), baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from loopml.enums import TaskKind
from loopml.errors import DataError
from loopml.tasks.base import Task, lightgbm, lightgbm_default
from loopml.tasks.labels import target_label

__all__ = ["TASK", "metrics"]

# lightgbm_default: LightGBM with its own defaults, the yardstick of the default training.
CANDIDATES = ("lightgbm", "hist_gradient_boosting", "ridge", "lightgbm_default")


def labels(y: pd.Series) -> np.ndarray:
    """Numeric targets."""
    values = pd.to_numeric(y, errors="coerce")
    if values.isna().any():
        raise DataError(f"regression target '{y.name}' has non-numeric values.")
    return values.to_numpy(dtype=float)


def metrics(y_true: np.ndarray, predicted: np.ndarray, **_: Any) -> dict[str, float]:
    """RMSE, MAE and R²."""
    y, p = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, p))),
        "mae": float(mean_absolute_error(y, p)),
        "r2": float(r2_score(y, p)) if len(y) > 1 else float("nan"),
    }


def candidate(name: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    if name == "lightgbm":
        return lightgbm("regressor", params, seed)
    if name == "lightgbm_default":
        return lightgbm_default("regressor", params, seed)
    if name == "hist_gradient_boosting":
        return HistGradientBoostingRegressor(**{**params, "random_state": seed})
    return Ridge(**params)


def predict(model: Any, X: Any, **kwargs: Any) -> np.ndarray:
    values: np.ndarray = model.predict(X, **kwargs)
    return values.astype(np.float64)


def outputs(scores: np.ndarray, *, classes: Any = None, threshold: float = 0.5) -> list[dict[str, Any]]:
    """``prediction`` (also as ``score``)."""
    return [{"score": float(v), "prediction": float(v)} for v in scores]


def output_schema(classes: Any = None) -> dict[str, Any]:
    """The JSON Schema of :func:`outputs`' rows."""
    value = {"type": "number", "description": "The predicted value."}
    return {"properties": {"score": value, "prediction": value}, "required": ["score", "prediction"]}


TASK = Task(
    name=TaskKind.REGRESSION,
    primary="rmse",
    greater_is_better=False,
    candidates=CANDIDATES,
    labels=labels,
    metrics=metrics,
    make_candidate=candidate,
    make_baseline=lambda: DummyRegressor(strategy="mean"),
    predict=predict,
    outputs=outputs,
    output_schema=output_schema,
    lgb_metric="rmse",
    reference="lightgbm_default",
    check_label=target_label,
)
