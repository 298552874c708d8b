"""The recommend example's data: the first project's lines and the replayed later ones never overlap."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from loopml.config import load_settings
from loopml.examples import example_names
from loopml.examples.recommend import CUT, later_lines, write_data


def test_initial_lines_and_replay_split_at_the_cut(tmp_path: Path) -> None:
    write_data(tmp_path)
    first = pd.read_parquet(tmp_path / "lines" / "lines-0001.parquet")
    later: pd.DataFrame = later_lines()  # type: ignore[assignment]
    assert first["InvoiceDate"].max() < pd.Timestamp(CUT) <= later["InvoiceDate"].min()
    assert len(first) + len(later) == 541_909  # every published line, on one side only
    assert list(first.columns) == list(later.columns)


def test_months_option_keeps_a_small_prefix(tmp_path: Path) -> None:
    write_data(tmp_path, until=None, months=1)
    lines = pd.read_parquet(tmp_path / "lines" / "lines-0001.parquet")
    assert lines["InvoiceDate"].dt.to_period("M").nunique() == 1


def test_project_file_is_a_ranking_project() -> None:
    assert "recommend" in example_names()
    shipped = resources.files("loopml.examples.recommend").joinpath("loopml.yaml")
    with resources.as_file(shipped) as path:
        settings = load_settings(path)
    assert settings.task == "ranking" and settings.ranking is not None
    assert (settings.ranking.user, settings.ranking.item, settings.ranking.k) == (
        "CustomerID",
        "StockCode",
        10,
    )
    rules = {f.rule for f in settings.cleaning.filters}
    assert {"cancellation", "non_product_code"} <= rules
    assert settings.actions.rules[0].endpoint == "crm"
