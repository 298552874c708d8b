"""Forecasts as scoring: a model's series and their feature rows at the newest origin, one request's
steps, each step's output and its prediction-log record. The forecast route and batch forecasts both
go through here and through :class:`~loopml.scoring.LoadedModel`, so they give the same numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from loopml.config import ForecastConfig
from loopml.enums import Origin
from loopml.errors import InputError, NotFoundError
from loopml.scoring.loaded import LoadedModel
from loopml.store import Store
from loopml.tasks.forecast_base import FEATURES, Panel, demand_panel, feature_rows
from loopml.validate.datasets import latest_version, load_snapshot

__all__ = [
    "ForecastRequest",
    "ForecastSource",
    "ForecastSources",
    "forecast_outputs",
    "forecast_record",
    "forecast_source",
    "forecast_table",
    "select_steps",
]


class ForecastRequest(BaseModel):
    """Which series to forecast, and how many periods ahead."""

    model_config = ConfigDict(extra="forbid")

    item: str = Field(..., min_length=1, max_length=200, description="The product, e.g. '85123A'.")
    group: str | None = Field(
        None, max_length=200, description="Its region: a listed group or 'rest' (default: the first group)."
    )
    horizon: int = Field(4, ge=1, le=52, description="Periods ahead, at most the model's horizon.")


@dataclass(frozen=True)
class ForecastSource:
    """A model's series, their feature rows at the newest origin, and the data version they came from."""

    panel: Panel
    rows: pd.DataFrame
    dataset_version: int
    config: ForecastConfig

    @property
    def origin(self) -> pd.Timestamp:
        return pd.Timestamp(self.panel.periods[-1])


def forecast_source(
    store: Store, model: LoadedModel, dataset_version: int | None = None, stock: Path | None = None
) -> ForecastSource:
    """Build the panel of ``model``'s series from a data version (the latest by default).

    With a ``stock`` CSV (columns ``item``, ``group``, ``on_hand``) each row carries its series'
    stock on hand (NaN where the file has none).
    """
    sig, metrics = model.version.signature, model.version.metrics
    if not model.task.scores_series or not sig.get("forecast"):
        raise InputError(f"model '{model.name}' version {model.version.version} is not a forecast model.")
    config = ForecastConfig.model_validate(sig["forecast"])
    dataset, lines = load_snapshot(store, model.name, dataset_version)
    keys = [(str(k[0]), str(k[1])) for k in metrics["keys"]]
    panel = demand_panel(lines, config, sig["target"], sig["event_time"], keep=keys)
    rows = feature_rows(panel, panel.values.shape[1] - 1, range(1, config.horizon + 1))
    rows["on_hand"] = _on_hand(stock, rows) if stock is not None else np.nan
    return ForecastSource(panel, rows, dataset.version, config)


def _on_hand(path: Path, rows: pd.DataFrame) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"forecast.stock file '{path}' does not exist; fix forecast.stock in loopml.yaml.")
    stock = pd.read_csv(path, dtype={"item": str, "group": str})
    missing = {"item", "group", "on_hand"} - set(stock.columns)
    if missing:
        raise InputError(f"forecast.stock file '{path}' lacks column(s) {', '.join(sorted(missing))}.")
    levels = stock.set_index(["item", "group"])["on_hand"].astype(float)
    levels = levels[~levels.index.duplicated(keep="last")]
    keys = pd.MultiIndex.from_arrays([rows["item"], rows["group"]])
    return levels.reindex(keys).to_numpy(dtype=float)


def forecast_table(model: LoadedModel, source: ForecastSource, horizon: int | None = None) -> pd.DataFrame:
    """Every series' forecasts (batch): item, group, origin, period, horizon, forecast, on_hand, ..."""
    steps = source.config.horizon if horizon is None else horizon
    rows = source.rows[source.rows["horizon"] <= steps].reset_index(drop=True)
    columns = ["item", "group", "origin", "period", "horizon", "mase_scale", "level", "on_hand"]
    return rows[columns].assign(forecast=model.score(rows))


class ForecastSources:
    """One :class:`ForecastSource` per (model version, data version), rebuilt when either moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: dict[tuple[int, int, int], ForecastSource] = {}

    def get(self, store: Store, model: LoadedModel, stock: Path | None) -> ForecastSource:
        latest = latest_version(store, model.name)
        if latest is None:
            raise NotFoundError(f"no data set version of '{model.name}' to forecast from; ingest first.")
        changed = stock.stat().st_mtime_ns if stock is not None and stock.is_file() else 0
        key = (model.version.version, latest.version, changed)
        with self._lock:
            if key not in self._cached:
                self._cached = {key: forecast_source(store, model, latest.version, stock)}
            return self._cached[key]


def select_steps(source: ForecastSource, body: ForecastRequest) -> tuple[pd.DataFrame, str]:
    """The feature rows of one request's series and steps, and its group (the default filled in)."""
    config = source.config
    if body.horizon > config.horizon:
        raise InputError(
            f"field 'horizon': the model forecasts at most {config.horizon} periods ahead; "
            f"got {body.horizon}.",
            details=[{"field": "horizon", "error": f"at most {config.horizon}", "type": "less_than_equal"}],
        )
    group = body.group or (config.groups[0] if config.groups else "all")
    rows = source.rows[
        (source.rows["item"] == body.item)
        & (source.rows["group"] == group)
        & (source.rows["horizon"] <= body.horizon)
    ]
    if rows.empty:
        groups = ", ".join(sorted(set(source.panel.groups)))
        raise NotFoundError(
            f"series item '{body.item}', group '{group}' is not forecast by this model; "
            f"it forecasts {len(source.panel.items)} series (groups: {groups})."
        )
    return rows.reset_index(drop=True), group


def forecast_outputs(rows: pd.DataFrame, values: np.ndarray) -> list[dict[str, Any]]:
    """Each step's output: the forecast, the running total, and at the last step the shortfall
    against stock on hand (what a reorder rule in ``actions:`` matches on)."""
    total = np.cumsum(values)
    outputs: list[dict[str, Any]] = [
        {"score": float(v), "prediction": float(v), "cumulative": float(c)}
        for v, c in zip(values, total, strict=True)
    ]
    on_hand = float(rows["on_hand"].iloc[-1]) if "on_hand" in rows else float("nan")
    if outputs and np.isfinite(on_hand):
        shortfall = float(total[-1] - on_hand)
        outputs[-1]["shortfall"] = shortfall
        outputs[-1]["order_quantity"] = int(np.ceil(shortfall)) if shortfall > 0 else 0
    return outputs


def forecast_record(
    model: LoadedModel,
    pid: str,
    row: Mapping[Any, Any],
    output: dict[str, Any],
    now: Any,
    origin: str = Origin.API,
) -> dict[str, Any]:
    """A prediction-log record: the series, its period (the event time), features and the forecast."""
    period = pd.Timestamp(row["period"]).isoformat()
    inputs = {
        # The period is the event time: the monitor's weekly windows and the actuals' join key.
        str(model.version.signature.get("event_time") or "period"): period,
        "item": row["item"],
        "group": row["group"],
        "period": period,
        "origin": pd.Timestamp(row["origin"]).isoformat(),
        "horizon": int(row["horizon"]),
        "mase_scale": float(row["mase_scale"]),
        **({"on_hand": float(row["on_hand"])} if np.isfinite(row.get("on_hand", np.nan)) else {}),
        **{f: float(row[f]) for f in FEATURES},
    }
    return {
        "id": pid,
        "model_name": model.name,
        "model_version": model.version.version,
        "created_at": now,
        "origin": origin,
        "inputs": inputs,
        "score": output["score"],
        "output": {**output, "prediction_id": pid},
    }
