"""``loopml demo recommend``'s pieces: which lines are purchases, each list's label, the weekly hit rate."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from loopml.examples.recommend.demo import _labels, _purchases, _weekly, render


def _lines() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InvoiceNo": ["1", "C2", "3", "4", "5", "6"],
            "StockCode": ["10001", "10001", "POST", "10002", "10003", "10002"],
            "Quantity": [1, -1, 1, 2, 1, 0],
            "CustomerID": [12.0, 12.0, 12.0, None, 13.0, 12.0],
            "InvoiceDate": pd.to_datetime(["2011-10-01", "2011-10-02", "2011-10-02", "2011-10-03",
                                           "2011-10-20", "2011-10-04"]),
        }
    )  # fmt: skip


def test_purchases_are_what_the_contract_accepts() -> None:
    purchases = _purchases(_lines())
    assert purchases["InvoiceNo"].tolist() == ["1", "5"]  # no cancellation, postage, guest or zero
    assert purchases["customer"].tolist() == ["12", "13"]


def test_a_list_is_labelled_with_the_items_bought_in_the_next_seven_days() -> None:
    purchases = _purchases(_lines())
    served: list[dict[str, Any]] = [
        {"customer": "12", "time": pd.Timestamp("2011-09-30"), "items": [{"item": "10001"}, {"item": "9"}]},
        {"customer": "13", "time": pd.Timestamp("2011-10-01"), "items": [{"item": "10003"}]},  # 19 days on
        {"customer": "99", "time": pd.Timestamp("2011-10-01"), "items": [{"item": "10001"}]},  # no purchase
    ]
    assert _labels(served, purchases) == [1, 0, 0]


def test_weekly_hit_rates_split_known_and_cold_start_customers() -> None:
    served = [
        {"week": "2011-10-01", "model_version": 1, "known": True},
        {"week": "2011-10-01", "model_version": 1, "known": False},
        {"week": "2011-10-08", "model_version": 2, "known": True},
    ]
    weeks = _weekly(served, [2, 0, 0])
    assert weeks[0] == {
        "week": "2011-10-01",
        "model_version": 1,
        "lists": 2,
        "hit_rate_at_10": 0.5,
        "hit_rate_known": 1.0,
        "hit_rate_cold_start": 0.0,
    }
    assert weeks[1]["model_version"] == 2 and weeks[1]["hit_rate_cold_start"] is None


def test_render_shows_figures_candidates_and_weeks(capsys: pytest.CaptureFixture[str]) -> None:
    weekly = _weekly([{"week": "2011-10-01", "model_version": 1, "known": True}], [1])
    figures = {"ndcg": 0.2, "recall": 0.3, "hit_rate": 0.5, "coverage": 0.1}
    render({"crm_rows": 173, "served_hit_rate_at_10": 0.41, "candidates": {"als": figures},
            "gate": {"x": "y"}, "weekly": weekly})  # fmt: skip
    out = capsys.readouterr().out
    assert "crm rows" in out and "173" in out and "0.4100" in out
    assert "als" in out and "0.2000" in out and "2011-10-01" in out and "1.000" in out
