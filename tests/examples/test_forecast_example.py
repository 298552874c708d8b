"""The forecast example: its data split in time, its stock table and its project file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from loopml.config import load_settings
from loopml.examples import write_example
from loopml.examples.forecast import CUTOFF, REPLAY_WEEKS


def test_history_and_replay_split_at_the_cutoff(tmp_path: Path) -> None:
    write_example("forecast", tmp_path)
    settings = load_settings(tmp_path, environ={})
    assert settings.task == "forecast" and settings.forecast is not None
    assert settings.forecast.item == "StockCode" and settings.forecast.groups == ["United Kingdom"]
    history = pd.read_parquet(tmp_path / "data" / "lines" / "history.parquet")
    cutoff = pd.Timestamp(CUTOFF)
    assert history["InvoiceDate"].max() < cutoff
    weeks = [
        pd.read_parquet(tmp_path / "data" / "replay" / f"week-{w + 1}.parquet") for w in range(REPLAY_WEEKS)
    ]
    for w, week in enumerate(weeks):
        start = cutoff + pd.Timedelta(weeks=w)
        assert week["InvoiceDate"].min() >= start and week["InvoiceDate"].max() < start + pd.Timedelta(
            weeks=1
        )
    shipped = resources.files("loopml.examples.retail").joinpath("data", "online_retail.parquet")
    with resources.as_file(shipped) as path:
        everything = pd.read_parquet(path, columns=["InvoiceDate"])
    end = cutoff + pd.Timedelta(weeks=REPLAY_WEEKS)
    assert len(history) + sum(map(len, weeks)) == int((everything["InvoiceDate"] < end).sum())
    stock = pd.read_csv(tmp_path / "data" / "stock.csv", dtype={"item": str})
    assert list(stock.columns) == ["item", "group", "on_hand"]
    assert set(stock["group"]) == {"United Kingdom", "rest"} and (stock["on_hand"] >= 0).all()
    assert settings.forecast.stock == "data/stock.csv" and settings.actions.rules[0].endpoint == "erp"
