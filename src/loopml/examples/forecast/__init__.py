"""Demand forecasting on the UCI Online Retail transactions: weekly demand per product and region.

The data is the retail example's file (shipped once, in ``loopml.examples.retail``), split in time:
the lines before ``cutoff`` to train on, and the weeks after it as ``replay/`` files that arrive later,
one week per file, as actual demand. ``stock.csv`` holds made-up stock levels (the data set has none)
for the reorder action.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from loopml.examples import REAL_DATA_DEMO
from loopml.project.examples import Example

__all__ = ["CUTOFF", "EXAMPLE", "REPLAY_WEEKS", "write_data", "write_stock"]

CUTOFF = "2011-11-07"  # a Monday: the history holds 48 complete weeks, the replay the 4 after it
REPLAY_WEEKS = 4


def _lines() -> pd.DataFrame:
    shipped = resources.files("loopml.examples.retail").joinpath("data", "online_retail.parquet")
    with resources.as_file(shipped) as path:
        return pd.read_parquet(path)


def write_data(data_dir: Path, cutoff: str = CUTOFF, replay_weeks: int = REPLAY_WEEKS) -> None:
    """``lines/history.parquet`` (before ``cutoff``), ``replay/week-N.parquet`` and ``stock.csv``."""
    lines = _lines()
    start = pd.Timestamp(cutoff)
    history = lines[lines["InvoiceDate"] < start]
    (data_dir / "lines").mkdir(parents=True, exist_ok=True)
    history.to_parquet(data_dir / "lines" / "history.parquet", index=False)
    (data_dir / "replay").mkdir(exist_ok=True)
    for week in range(replay_weeks):
        begin, end = start + pd.Timedelta(weeks=week), start + pd.Timedelta(weeks=week + 1)
        part = lines[(lines["InvoiceDate"] >= begin) & (lines["InvoiceDate"] < end)]
        part.to_parquet(data_dir / "replay" / f"week-{week + 1}.parquet", index=False)
    write_stock(history, data_dir / "stock.csv")


def write_stock(history: pd.DataFrame, path: Path, seed: int = 7) -> None:
    """Made-up stock on hand per product and region (columns item, group, on_hand): 1 to 6 weeks of
    its mean weekly sales over the last 8 weeks of ``history``, seeded."""
    import numpy as np

    recent = history[history["InvoiceDate"] >= history["InvoiceDate"].max() - pd.Timedelta(weeks=8)]
    region = np.where(recent["Country"] == "United Kingdom", "United Kingdom", "rest")
    weekly = recent.assign(region=region).groupby(["StockCode", "region"])["Quantity"].sum() / 8
    weekly = weekly[weekly > 0]
    rng = np.random.default_rng(seed)
    on_hand = np.round(weekly.to_numpy() * rng.uniform(1, 6, len(weekly))).astype(int)
    stock = pd.DataFrame(
        {
            "item": weekly.index.get_level_values(0),
            "group": weekly.index.get_level_values(1),
            "on_hand": on_hand,
        }
    )
    stock.to_csv(path, index=False)


EXAMPLE = Example(
    name="forecast",
    summary="weekly demand per product and region from the Online Retail data (forecast, backtests)",
    package=__name__,
    write_data=f"{__name__}:write_data",
    demo=f"{__name__}.demo",
    not_taken=REAL_DATA_DEMO,
)
