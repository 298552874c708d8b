"""Rolling-origin backtests and training for the forecast task.

The newest ``origins`` periods (each with every horizon inside the data) are the backtest: at each
origin a model is fitted on the rows whose target period is at or before that origin, then forecasts
the next ``horizon`` periods. The blend weight with the moving average is tuned on ``tuning_origins``
earlier origins whose targets all lie at or before the first backtest origin, so nothing from the
backtest's future steers a choice. The served model is then refitted on every complete period.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import ForecastConfig, Settings
from loopml.errors import DataError
from loopml.tasks.base import CustomFit
from loopml.tasks.forecast_base import (
    FEATURES,
    SEASON,
    DemandRegressor,
    Panel,
    demand_panel,
    feature_rows,
    forecast_config,
    metrics,
)

__all__ = ["Backtest", "backtest", "origin_plan", "panel_rows", "train_forecast"]

FIRST_ORIGIN = 7  # the first origin with 8 periods of lags
BLENDS = tuple(round(w, 1) for w in np.linspace(0, 1, 11))


@dataclass(frozen=True)
class Backtest:
    """Backtest rows (features, actuals), the model's and the blend's forecasts, the chosen blend."""

    rows: pd.DataFrame
    model_output: np.ndarray
    output: np.ndarray
    blend: float
    tuning: dict[str, Any]
    origins: list[int]


def origin_plan(periods: int, config: ForecastConfig) -> tuple[list[int], list[int]]:
    """Backtest origins (the newest with every horizon observed) and the earlier tuning origins."""
    h = config.horizon
    last = periods - 1 - h
    origins = list(range(last - config.origins + 1, last + 1))
    tuning = list(range(origins[0] - h - config.tuning_origins + 1, origins[0] - h + 1))
    if tuning[0] < FIRST_ORIGIN + 2 * h:
        raise DataError(
            f"forecast: {periods} periods are too few for {config.origins} backtest and "
            f"{config.tuning_origins} tuning origins at horizon {h}; need at least "
            f"{FIRST_ORIGIN + 3 * h + config.origins + config.tuning_origins} (lower forecast.origins)."
        )
    return origins, tuning


def panel_rows(panel: Panel, horizon: int, first: int = FIRST_ORIGIN) -> pd.DataFrame:
    """Feature rows of every origin from ``first`` on, with ``origin_index`` and ``target_index``."""
    frames = []
    for t in range(first, panel.values.shape[1] - 1):
        rows = feature_rows(panel, t, range(1, horizon + 1))
        frames.append(rows.assign(origin_index=t, target_index=t + rows["horizon"].astype(int)))
    return pd.concat(frames, ignore_index=True)


def _fit_until(rows: pd.DataFrame, last_target: int, params: dict[str, Any], seed: int) -> DemandRegressor:
    """A model fitted on the rows whose target period is at or before ``last_target``."""
    train = rows[(rows["target_index"] <= last_target) & rows["actual"].notna()]
    return DemandRegressor(**{**params, "blend": 1.0, "random_state": seed}).fit(
        train, train["actual"].to_numpy()
    )


def _forecast_at(
    rows: pd.DataFrame, origins: list[int], params: dict[str, Any], seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    parts, outputs = [], []
    for origin in origins:
        model = _fit_until(rows, origin, params, seed)
        test = rows[(rows["origin_index"] == origin) & rows["actual"].notna()]
        parts.append(test)
        outputs.append(model.predict_model(test))
    return pd.concat(parts, ignore_index=True), np.concatenate(outputs)


def _blended(rows: pd.DataFrame, model_output: np.ndarray, weight: float) -> np.ndarray:
    return weight * model_output + (1 - weight) * rows["moving_average"].to_numpy(dtype=float)


def backtest(
    panel: Panel,
    config: ForecastConfig,
    params: dict[str, Any],
    seed: int = 0,
    rows: pd.DataFrame | None = None,
) -> Backtest:
    """Tune the blend on the tuning origins, then forecast from every backtest origin."""
    origins, tuning = origin_plan(panel.values.shape[1], config)
    rows = panel_rows(panel, config.horizon) if rows is None else rows
    tune_rows, tune_output = _forecast_at(rows, tuning, params, seed)
    y, scale = tune_rows["actual"].to_numpy(), tune_rows["mase_scale"].to_numpy()
    grid = {w: metrics(y, _blended(tune_rows, tune_output, w), mase_scale=scale)["mase"] for w in BLENDS}
    blend = min(grid, key=lambda w: (grid[w], -w))
    test_rows, model_output = _forecast_at(rows, origins, params, seed)
    tuning_info = {
        "origins": [str(panel.periods[o].date()) for o in tuning],
        "blend": blend,
        "mase_by_blend": grid,
    }
    return Backtest(
        test_rows, model_output, _blended(test_rows, model_output, blend), blend, tuning_info, origins
    )


def _scores(rows: pd.DataFrame, output: np.ndarray) -> dict[str, float]:
    return metrics(rows["actual"].to_numpy(), output, mase_scale=rows["mase_scale"].to_numpy())


def backtest_metrics(result: Backtest, panel: Panel) -> dict[str, Any]:
    """The model's and every baseline's metrics over the backtest, per horizon and per origin."""
    rows = result.rows
    baselines: dict[str, Any] = {
        "naive": _scores(rows, rows["naive"].to_numpy()),
        "moving_average": _scores(rows, rows["moving_average"].to_numpy()),
    }
    if panel.frequency in SEASON:
        baselines["seasonal_naive"] = _scores(rows, rows["seasonal_naive"].to_numpy())
    else:
        baselines["seasonal_naive"] = {
            "skipped": "weekly data holds about one year: a 52-week season cannot be estimated"
        }
    per = {
        key: {
            str(value if key == "horizon" else pd.Timestamp(value).date()): _scores(
                rows[mask], result.output[mask.to_numpy()]
            )["mase"]
            for value in sorted(rows[key].unique())
            for mask in [rows[key] == value]
        }
        for key in ("horizon", "origin")
    }
    return {
        "holdout": _scores(rows, result.output),
        "gradient_boosting_only": _scores(rows, result.model_output),
        "baseline": baselines["moving_average"],
        "baselines": baselines,
        "mase_by_horizon": per["horizon"],
        "mase_by_origin": per["origin"],
        "backtest_origins": [str(panel.periods[o].date()) for o in result.origins],
        "tuning": result.tuning,
    }


def _importance(model: DemandRegressor) -> dict[str, float]:
    values = model.model_.booster_.feature_importance(importance_type="gain")
    total = float(np.sum(values)) or 1.0
    pairs = sorted(zip(FEATURES, values, strict=True), key=lambda p: -p[1])
    return {name: float(v) / total for name, v in pairs}


def train_forecast(frame: pd.DataFrame, settings: Settings) -> CustomFit:
    """Panel, backtest, final fit on every complete period: the forecast task's trainer."""
    from sklearn.pipeline import Pipeline

    config = forecast_config(settings)
    if settings.event_time is None:
        raise DataError("task 'forecast' needs event_time (the transaction time) in loopml.yaml.")
    panel = demand_panel(frame, config, settings.target, settings.event_time)
    params, seed = dict(settings.train.params), settings.train.seed
    started = time.perf_counter()
    rows = panel_rows(panel, config.horizon)
    result = backtest(panel, config, params, seed, rows)
    final = DemandRegressor(**{**params, "blend": result.blend, "random_state": seed})
    complete = rows[rows["actual"].notna()]
    final.fit(complete, complete["actual"].to_numpy())
    pipeline = Pipeline([("features", "passthrough"), ("model", final)])
    summary = backtest_metrics(result, panel)
    inputs = (config.item, *([config.group_column] if config.group_column else []))
    found = {
        **summary,
        "validation": {"score": min(result.tuning["mase_by_blend"].values()), "rows": len(rows)},
        "holdout_ci": {},
        "rows_train": len(complete),
        "rows_holdout": len(result.rows),
        "fit_seconds": round(time.perf_counter() - started, 3),
        "series": len(panel.items),
        "periods": [str(panel.periods[0].date()), str(panel.periods[-1].date())],
        "keys": [list(k) for k in zip(panel.items, panel.groups, strict=True)],
    }
    return CustomFit(
        pipeline,
        found,
        {"model": "lightgbm", **params, "blend": result.blend},
        result.rows.reset_index(drop=True),
        result.output,
        result.rows["actual"].to_numpy(dtype=float),
        FEATURES,
        inputs,
        _importance(final),
    )
