"""Demand forecasting's building blocks: transaction lines -> a panel of demand per series and
period -> point-in-time features -> a global gradient-boosted model (judged by the rolling-origin
backtests of :mod:`loopml.tasks.forecast_backtest`).

Every feature of a row at origin ``t`` is computed from the periods ``<= t`` only (demand and how
many order lines made it), and the target is the demand ``h`` periods later (direct multi-horizon:
the horizon is a feature). The model learns
demand divided by the series' trailing 8-period mean (so one model fits series of any size), with
an L1 loss weighted so that it minimises MASE, and is blended with the 4-period moving average
with a weight tuned on origins before the backtest's (no leakage into the backtest).

Examples
--------
>>> y, p = np.array([10.0, 0.0, 5.0]), np.array([8.0, 1.0, 5.0])
>>> m = metrics(y, p, mase_scale=np.array([2.0, 2.0, 2.0]))
>>> round(m["wape"], 4), round(m["mase"], 4), round(m["smape"], 4)
(0.2, 0.5, 0.7407)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from loopml.config import ForecastConfig, Settings
from loopml.errors import ConfigError, DataError, InputError

__all__ = [
    "FEATURES",
    "META",
    "REST",
    "SEASON",
    "DemandRegressor",
    "Panel",
    "demand_panel",
    "feature_rows",
    "forecast_config",
    "metrics",
]

FEATURES: tuple[str, ...] = (
    *(f"lag_{k}" for k in range(8)),
    "ma_4", "ma_13", "median_4", "median_8", "std_8", "max_8", "zero_share_8", "periods_since_demand",
    "orders_trend", "orders_last", "order_size",
    "log_level", "group_code", "market_trend", "horizon", "target_week", "target_dow",
)  # fmt: skip
META: tuple[str, ...] = (
    "origin",
    "period",
    "level",
    "mase_scale",
    "naive",
    "moving_average",
    "seasonal_naive",
)
SEASON = {"D": 7}  # weekly season on daily data; one year of weekly data has no usable 52-week season
REST = "rest"


def forecast_config(settings: Settings) -> ForecastConfig:
    """The ``forecast:`` section, required by ``task: forecast``."""
    if settings.forecast is None:
        raise ConfigError(
            "task 'forecast' needs a 'forecast:' section in loopml.yaml naming at least 'item' "
            "(the product column); see `loopml init --example forecast`."
        )
    return settings.forecast


@dataclass(frozen=True)
class Panel:
    """Demand per series (rows) and period (columns): ``values[i, t]``."""

    values: np.ndarray
    items: tuple[str, ...]
    groups: tuple[str, ...]
    periods: pd.DatetimeIndex
    frequency: str = "W"
    orders: np.ndarray | None = None  # order lines per series and period (demand's frequency)

    def find(self, item: str, group: str) -> int | None:
        """The row of series (item, group), or None."""
        for i, key in enumerate(zip(self.items, self.groups, strict=True)):
            if key == (item, group):
                return i
        return None

    def future(self, origin: int, steps: int) -> pd.DatetimeIndex:
        """The ``steps`` periods after ``origin`` (beyond the data where needed)."""
        offset = pd.Timedelta(days=7 if self.frequency == "W" else 1)
        return pd.DatetimeIndex([self.periods[origin] + offset * (h + 1) for h in range(steps)])


def _period(times: pd.Series, frequency: str) -> pd.Series:
    stamps = pd.to_datetime(times)
    return stamps.dt.to_period("W-SUN").dt.start_time if frequency == "W" else stamps.dt.normalize()


def group_of(values: pd.Series | None, config: ForecastConfig, n: int) -> np.ndarray:
    """Each row's group: its value when listed in ``groups``, else ``rest`` (``all`` without a column)."""
    if values is None:
        return np.full(n, "all", dtype=object)
    text = values.astype("string").fillna(REST).to_numpy(dtype=object)
    return np.where(np.isin(text, config.groups), text, REST)


def demand_panel(
    lines: pd.DataFrame,
    config: ForecastConfig,
    target: str,
    event_time: str,
    keep: list[tuple[str, str]] | None = None,
) -> Panel:
    """Sum ``target`` per series and complete period; select the series (or use ``keep``'s).

    A first or last period only partly covered by the data is left out (a 3-day week is not low demand).
    """
    for column in (config.item, target, event_time, *([config.group_column] if config.group_column else [])):
        if column not in lines.columns:
            raise ConfigError(f"forecast: column '{column}' is not in the data.")
    quantity = pd.to_numeric(lines[target], errors="coerce").fillna(0.0).clip(lower=0.0)
    frame = pd.DataFrame(
        {
            "item": lines[config.item].astype("string").to_numpy(dtype=object),
            "group": group_of(
                lines[config.group_column] if config.group_column else None, config, len(lines)
            ),
            "period": _period(lines[event_time], config.frequency).to_numpy(),
            "quantity": quantity.to_numpy(dtype=float),
        }
    )
    periods = _complete_periods(pd.to_datetime(lines[event_time]), config.frequency)
    frame = frame[frame["period"].isin(periods)]
    table = frame.pivot_table("quantity", ["item", "group"], "period", aggfunc="sum", fill_value=0.0)
    table = table.reindex(columns=periods, fill_value=0.0)
    table = (
        _select(table, config)
        if keep is None
        else table.reindex(pd.MultiIndex.from_tuples(keep), fill_value=0.0)
    )
    counts = frame[frame["quantity"] > 0].pivot_table(
        "quantity", ["item", "group"], "period", aggfunc="count", fill_value=0
    )
    counts = counts.reindex(index=table.index, columns=periods, fill_value=0)
    if len(table) == 0:
        raise DataError(
            f"forecast: no series has demand in {config.min_active}+ periods; lower forecast.min_active."
        )
    return Panel(
        table.to_numpy(dtype=float),
        tuple(str(k[0]) for k in table.index),
        tuple(str(k[1]) for k in table.index),
        pd.DatetimeIndex(periods),
        config.frequency,
        counts.to_numpy(dtype=float),
    )


def _complete_periods(times: pd.Series, frequency: str) -> pd.DatetimeIndex:
    days = 7 if frequency == "W" else 1
    first = _period(pd.Series([times.min()]), frequency).iloc[0]
    last = _period(pd.Series([times.max()]), frequency).iloc[0]
    step = pd.Timedelta(days=days)
    start = first if times.min().normalize() <= first else first + step
    # A last week whose data stops before its last two days (the shop shuts on Saturdays) is partial.
    end = (
        last
        if frequency == "D" or times.max().normalize() >= last + step - pd.Timedelta(days=2)
        else last - step
    )
    return pd.date_range(start, end, freq="7D" if frequency == "W" else "D")


def _select(table: pd.DataFrame, config: ForecastConfig) -> pd.DataFrame:
    active = (table > 0).sum(axis=1)
    kept = table[active >= config.min_active]
    volume = kept.sum(axis=1)
    parts = []
    for group in sorted(set(kept.index.get_level_values(1))):
        in_group = volume[kept.index.get_level_values(1) == group]
        parts.append(kept.loc[in_group.sort_values(ascending=False).index[: config.series_per_group]])
    return pd.concat(parts) if parts else kept


def feature_rows(panel: Panel, origin: int, horizons: range) -> pd.DataFrame:
    """Point-in-time features of every series at ``origin`` (a period index) for each horizon.

    Only ``panel.values[:, : origin + 1]`` is read; ``actual`` is the demand at ``origin + h`` (NaN
    beyond the data).
    """
    history = panel.values[:, : origin + 1]
    if history.shape[1] < 2:
        raise DataError("forecast: an origin needs at least two periods of history.")
    level = _level(history)
    base = _series_features(history, level, panel)
    scale = np.abs(np.diff(history, axis=1)).mean(axis=1)
    season = SEASON.get(panel.frequency)
    seasonal = history[:, -season] if season and history.shape[1] >= season else np.full(len(level), np.nan)
    targets = panel.future(origin, max(horizons))
    frames = []
    for h in horizons:
        at = origin + h
        actual = panel.values[:, at] if at < panel.values.shape[1] else np.full(len(level), np.nan)
        when = targets[h - 1]
        frames.append(
            base.assign(
                horizon=float(h),
                target_week=float(when.isocalendar()[1]),
                target_dow=float(when.day_of_week),
                origin=panel.periods[origin],
                period=when,
                level=level,
                mase_scale=np.where(scale > 0, scale, 1.0),
                naive=history[:, -1],
                moving_average=history[:, -4:].mean(axis=1),
                seasonal_naive=seasonal,
                actual=actual,
            )
        )
    return pd.concat(frames, ignore_index=True)


def _level(history: np.ndarray) -> np.ndarray:
    """The trailing 8-period mean demand (the whole history's where that is 0): the series' scale."""
    recent, overall = history[:, -8:].mean(axis=1), history.mean(axis=1)
    return np.maximum(np.where(recent > 0, recent, overall), 1e-3)


def _series_features(history: np.ndarray, level: np.ndarray, panel: Panel) -> pd.DataFrame:
    n, t = history.shape
    cols: dict[str, Any] = {"item": list(panel.items), "group": list(panel.groups)}
    padded = np.concatenate([np.zeros((n, max(0, 8 - t))), history], axis=1)
    for k in range(8):
        cols[f"lag_{k}"] = padded[:, -1 - k] / level
    cols["ma_4"] = history[:, -4:].mean(axis=1) / level
    cols["ma_13"] = history[:, -13:].mean(axis=1) / level
    cols["median_4"] = np.median(history[:, -4:], axis=1) / level
    cols["median_8"] = np.median(history[:, -8:], axis=1) / level
    cols["std_8"] = history[:, -8:].std(axis=1) / level
    cols["max_8"] = history[:, -8:].max(axis=1) / level
    cols["zero_share_8"] = (history[:, -8:] == 0).mean(axis=1)
    last_demand = np.where(history > 0, np.arange(t), -1).max(axis=1)
    cols["periods_since_demand"] = (t - 1 - last_demand).astype(float)
    cols.update(_order_features(panel, t, level))
    cols["log_level"] = np.log1p(level)
    groups = sorted(set(panel.groups))
    cols["group_code"] = np.array([groups.index(g) for g in panel.groups], dtype=float)
    total = history.sum(axis=0)
    cols["market_trend"] = np.full(n, total[-4:].mean() / max(total[-13:].mean(), 1e-9))
    return pd.DataFrame(cols)


def _order_features(panel: Panel, t: int, level: np.ndarray) -> dict[str, np.ndarray]:
    """How often a series sells (order lines), steadier than how much: big one-off orders are noise."""
    if panel.orders is None:
        return {name: np.full(len(level), np.nan) for name in ("orders_trend", "orders_last", "order_size")}
    orders, demand = panel.orders[:, :t], panel.values[:, :t]
    recent, longer = orders[:, -4:].mean(axis=1), np.maximum(orders[:, -13:].mean(axis=1), 1e-9)
    size = demand[:, -13:].sum(axis=1) / np.maximum(orders[:, -13:].sum(axis=1), 1.0)
    return {
        "orders_trend": recent / longer,
        "orders_last": orders[:, -1] / longer,
        "order_size": recent * size / level,  # demand the recent order rate implies, at the usual size
    }


class DemandRegressor(RegressorMixin, BaseEstimator):
    """LightGBM on demand / level with a MASE-weighted L1 loss, blended with the moving average.

    ``fit`` and ``predict`` take :func:`feature_rows` frames (``level``, ``mase_scale`` and
    ``moving_average`` columns besides :data:`FEATURES`); the output is demand in units, >= 0.
    """

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        blend: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.blend = blend
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> DemandRegressor:
        """Fit on feature rows and their demand ``y``."""
        from loopml.tasks.base import lightgbm

        _check_columns(X)
        level = X["level"].to_numpy(dtype=float)
        weight = level / X["mase_scale"].to_numpy(dtype=float)
        params = {k: v for k, v in self.get_params().items() if k not in ("blend", "random_state")}
        model = lightgbm("regressor", {**params, "objective": "l1", "subsample_freq": 1}, self.random_state)
        model.fit(X[list(FEATURES)].to_numpy(dtype=float), np.asarray(y, dtype=float) / level,
                  sample_weight=weight / weight.mean())  # fmt: skip
        self.model_ = model
        self.features_ = list(FEATURES)
        return self

    def predict_model(self, X: pd.DataFrame) -> np.ndarray:
        """The gradient-boosted part alone, in units (before the blend)."""
        if not hasattr(self, "model_"):
            raise InputError("this DemandRegressor is not fitted yet; call fit first.")
        _check_columns(X)
        ratio = self.model_.predict(X[self.features_].to_numpy(dtype=float), num_threads=1)
        return np.maximum(ratio * X["level"].to_numpy(dtype=float), 0.0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Forecast demand (units) for each feature row."""
        model = self.predict_model(X)
        average = X["moving_average"].to_numpy(dtype=float)
        return np.asarray(self.blend * model + (1 - self.blend) * average, dtype=float)


def _check_columns(X: Any) -> None:
    needed = [*FEATURES, "level", "mase_scale", "moving_average"]
    missing = [c for c in needed if not isinstance(X, pd.DataFrame) or c not in X.columns]
    if missing:
        raise InputError(
            f"a forecast model takes feature rows (missing {', '.join(missing[:3])}); ask it through "
            "POST /v1/models/{name}/forecast or loopml.tasks.forecast.feature_rows."
        )


def metrics(
    y_true: np.ndarray, predicted: np.ndarray, *, mase_scale: np.ndarray | None = None, **_: Any
) -> dict[str, float]:
    """WAPE, sMAPE (0..2; 0 where actual and forecast are both 0), MAE, bias and, given each row's
    scale (its series' mean absolute one-step change up to the origin), MASE."""
    y, p = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)
    error = np.abs(y - p)
    denominator = np.abs(y) + np.abs(p)
    smape = np.divide(2 * error, denominator, out=np.zeros_like(error), where=denominator > 0)
    total = float(np.abs(y).sum())
    out = {
        "wape": float(error.sum() / total) if total > 0 else float("nan"),
        "smape": float(smape.mean()) if len(y) else float("nan"),
        "mae": float(error.mean()) if len(y) else float("nan"),
        "bias": float((p - y).sum() / total) if total > 0 else float("nan"),
    }
    if mase_scale is not None:
        scale = np.asarray(mase_scale, dtype=float)
        ok = np.isfinite(scale) & (scale > 0)
        out["mase"] = float((error[ok] / scale[ok]).mean()) if ok.any() else float("nan")
    return out
