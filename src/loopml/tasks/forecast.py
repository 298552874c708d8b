"""Demand forecasting as a task: the global gradient-boosted demand model of
:mod:`loopml.tasks.forecast_base`, trained and judged by the rolling-origin backtests of
:mod:`loopml.tasks.forecast_backtest`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from loopml.enums import TaskKind
from loopml.tasks import regression
from loopml.tasks.base import Task
from loopml.tasks.forecast_backtest import train_forecast
from loopml.tasks.forecast_base import (
    FEATURES,
    META,
    REST,
    SEASON,
    DemandRegressor,
    Panel,
    demand_panel,
    feature_rows,
    forecast_config,
    metrics,
)
from loopml.tasks.regression import labels

__all__ = [
    "FEATURES",
    "META",
    "REST",
    "SEASON",
    "TASK",
    "DemandRegressor",
    "Panel",
    "demand_panel",
    "feature_rows",
    "forecast_config",
    "metrics",
]


def _candidate(name: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    return DemandRegressor(**{**params, "random_state": seed})


def _predict(model: Any, X: Any, **kwargs: Any) -> np.ndarray:
    """Demand in units, from feature rows."""
    return np.asarray(model.predict(X), dtype=np.float64)


class MovingAverage(RegressorMixin, BaseEstimator):
    """The 4-period moving average baseline (reads the ``moving_average`` column of feature rows)."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> MovingAverage:
        self.fitted_ = True
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["moving_average"].to_numpy(dtype=float)


def _unseen(holdout: pd.DataFrame, champion_metrics: dict[str, Any]) -> np.ndarray:
    """Backtest rows forecast from an origin at or after the champion's last training period: there
    the champion knew nothing past the origin either (earlier origins' targets it trained on)."""
    periods = champion_metrics.get("periods")
    if not periods:
        return np.zeros(len(holdout), dtype=bool)
    return (pd.to_datetime(holdout["origin"]) >= pd.Timestamp(periods[1])).to_numpy()


def _trainer(frame: pd.DataFrame, settings: Any) -> Any:
    return train_forecast(frame, settings)


TASK = Task(
    name=TaskKind.FORECAST,
    primary="mase",
    greater_is_better=False,
    candidates=("lightgbm",),
    labels=labels,
    metrics=metrics,
    make_candidate=_candidate,
    make_baseline=MovingAverage,
    predict=_predict,
    outputs=regression.outputs,
    output_schema=regression.output_schema,
    trainer=_trainer,
    scores_series=True,
    metric_inputs=("mase_scale",),
    unseen=_unseen,
)
