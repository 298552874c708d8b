"""Fitting a model on a data snapshot and judging it on a time-ordered holdout."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from loopml.config import Settings
from loopml.errors import ConfigError, DataError
from loopml.features import FeatureColumns, build_preprocessor, select_columns, window_features, window_specs
from loopml.tasks import binary
from loopml.validate.contract import DataContract

__all__ = ["TrainResult", "fit"]


@dataclass(frozen=True)
class TrainResult:
    """A fitted pipeline with what the registry records about it."""

    pipeline: Pipeline
    columns: FeatureColumns
    metrics: dict[str, Any]
    params: dict[str, Any]
    holdout: pd.DataFrame = field(repr=False)
    holdout_score: np.ndarray = field(repr=False)

    @property
    def input_columns(self) -> list[str]:
        """Raw columns a scoring request must carry."""
        return list(self.columns.inputs)


def _labels(frame: pd.DataFrame, target: str) -> np.ndarray:
    if target not in frame.columns:
        raise ConfigError(f"target column '{target}' is not in the data.")
    y = frame[target]
    if y.isna().any():
        raise DataError(f"target column '{target}' has {int(y.isna().sum())} missing values.")
    values = np.unique(y.to_numpy())
    if len(values) != 2 or not set(values.tolist()) <= {0, 1}:
        raise DataError(f"binary target '{target}' must hold 0/1 values; found {values[:5].tolist()}.")
    return y.to_numpy().astype(int)


def fit(frame: pd.DataFrame, contract: DataContract, settings: Settings) -> TrainResult:
    """Fit the configured candidate on the older rows; score it and the dummy baseline on the newest."""
    if settings.task != "binary":
        raise ConfigError(f"task '{settings.task}' is not supported yet; use task: binary.")
    cfg = settings.train
    y = _labels(frame, settings.target)
    train_pos, holdout_pos = binary.time_split(frame, settings.event_time, cfg.holdout_fraction)
    columns = select_columns(contract, settings.features)
    specs = window_specs(settings.features)
    if specs:
        assert settings.event_time is not None  # select_columns checked it
        windows = window_features(frame, specs, settings.event_time, settings.id_column)
        frame = pd.concat([frame.reset_index(drop=True), windows.reset_index(drop=True)], axis=1)
    model = binary.candidate(cfg.model, cfg.params, cfg.seed)
    pipeline = Pipeline(
        [
            ("features", build_preprocessor(columns, settings.features, scale=cfg.model == "logistic")),
            ("model", model),
        ]
    )
    X = frame[columns.all]
    started = time.perf_counter()
    pipeline.fit(X.iloc[train_pos], y[train_pos])
    seconds = time.perf_counter() - started
    holdout = frame.iloc[holdout_pos].reset_index(drop=True)
    score = pipeline.predict_proba(X.iloc[holdout_pos])[:, 1]
    dummy = binary.baseline().fit(X.iloc[train_pos], y[train_pos])
    metrics = {
        "holdout": binary.metrics(y[holdout_pos], score, k=cfg.precision_at_k),
        "baseline": binary.metrics(
            y[holdout_pos], dummy.predict_proba(X.iloc[holdout_pos])[:, 1], k=cfg.precision_at_k
        ),
        "rows_train": len(train_pos),
        "rows_holdout": len(holdout_pos),
        "fit_seconds": round(seconds, 3),
    }
    if settings.event_time:
        metrics["holdout_start"] = str(pd.to_datetime(frame[settings.event_time]).iloc[holdout_pos].min())
    params = {"model": cfg.model, **model.get_params(deep=False)}
    return TrainResult(pipeline, columns, metrics, _jsonable(params), holdout, score)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | type(None)) else repr(v) for k, v in params.items()
    }
