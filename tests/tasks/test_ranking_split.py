"""The ranking trainer: a time split without leakage, evaluation on new items only, the choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.config import parse_settings
from loopml.errors import ConfigError
from loopml.tasks.ranking import USER_COLUMN
from loopml.tasks.ranking_train import evaluation_set, train_ranking
from loopml.tasks.recommenders import user_key

PROJECT = """
name: shop
task: ranking
target: Quantity
event_time: InvoiceDate
source: {kind: parquet, path: data}
ranking: {user: CustomerID, item: StockCode, segment: Country, k: 5}
train: {model: MODEL, bootstrap: 20}
"""


def purchases(days: int = 60, users: int = 60, seed: int = 1) -> pd.DataFrame:
    """Two tastes of customers buying every few days; each taste has a best seller everyone buys."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2011-01-01")
    for u in range(users):
        group = "a" if u % 2 == 0 else "b"
        for day in sorted(rng.choice(days, size=8, replace=False)):
            item = f"{group}{int(rng.zipf(1.6)) % 15}"
            rows.append(
                {"CustomerID": float(100 + u), "StockCode": item, "Country": "UK" if group == "a" else "FR",
                 "Quantity": 1, "InvoiceDate": start + pd.Timedelta(days=int(day), hours=int(u % 9))}
            )  # fmt: skip
    return pd.DataFrame(rows).sort_values("InvoiceDate").reset_index(drop=True)


def settings(model: str = "auto"):  # type: ignore[no-untyped-def]
    return parse_settings(PROJECT.replace("MODEL", model))


def test_evaluation_rows_are_later_new_items_of_known_users() -> None:
    lines = purchases()
    cut = lines["InvoiceDate"].quantile(0.7)
    before, after = lines[lines["InvoiceDate"] < cut], lines[lines["InvoiceDate"] >= cut]
    cfg = settings().ranking
    assert cfg is not None
    data = evaluation_set(before, after, cfg, "InvoiceDate")
    assert len(data.rows) > 0
    assert (data.rows["time"] >= cut).all()  # nothing from before the cut is a hit
    known_before = {(user_key(u), i) for u, i in zip(before["CustomerID"], before["StockCode"], strict=True)}
    for user, item in zip(data.rows[USER_COLUMN], data.rows["StockCode"], strict=True):
        assert user in data.histories  # a user who bought before the cut
        assert (user, item) not in known_before  # and an item new to that user
    assert not data.rows.duplicated([USER_COLUMN, "StockCode"]).any()
    histories_only_before = {u for u in data.histories}
    assert histories_only_before <= set(before["CustomerID"].map(user_key))


def test_trainer_judges_candidates_and_refits_the_choice() -> None:
    lines = purchases()
    fitted = train_ranking(lines, settings())
    m = fitted.metrics
    assert set(m["candidates"]) == {"popularity", "cooccurrence", "als"}
    assert m["chosen"] == max(m["validation"]["ndcg"], key=m["validation"]["ndcg"].get)
    assert m["baseline"] == m["candidates"]["popularity"]
    assert m["holdout"] == m["candidates"][m["chosen"]]
    assert m["rows_train"] + m["rows_holdout"] == len(lines)
    assert pd.Timestamp(m["holdout_start"]) > lines["InvoiceDate"].iloc[m["rows_train"] - 1]
    assert m["trained_until"] == str(lines["InvoiceDate"].max())  # the registered model saw every line
    assert 0 <= m["holdout"]["ndcg"] <= 1 and 0 < m["holdout"]["coverage"] <= 1
    assert len(fitted.holdout_output) == len(fitted.holdout) == m["evaluation_rows"]
    low, high = m["holdout_ci"]["ndcg"]
    assert low <= m["holdout"]["ndcg"] <= high
    assert fitted.inputs == ("CustomerID", "StockCode", "Country")


def test_forced_model_and_bad_config() -> None:
    lines = purchases(users=30)
    assert train_ranking(lines, settings("popularity")).metrics["chosen"] == "popularity"
    with pytest.raises(ConfigError, match="not a candidate for task 'ranking'"):
        train_ranking(lines, settings("lightgbm"))
    with pytest.raises(ConfigError, match=r"ranking\.item 'StockCode'"):
        train_ranking(lines.rename(columns={"StockCode": "sku"}), settings())
    no_section = parse_settings(PROJECT.replace("MODEL", "auto").replace(
        "ranking: {user: CustomerID, item: StockCode, segment: Country, k: 5}\n", ""))  # fmt: skip
    with pytest.raises(ConfigError, match="needs a 'ranking:' section"):
        train_ranking(lines, no_section)


def test_params_per_candidate_and_bad_params() -> None:
    lines = purchases(users=30)
    text = PROJECT.replace("MODEL", "auto").replace(
        "bootstrap: 20}", "bootstrap: 0, params: {als: {factors: 4}}}"
    )
    fitted = train_ranking(lines, parse_settings(text))
    assert fitted.params.get("factors") == 4 or fitted.metrics["chosen"] != "als"
    bad = PROJECT.replace("MODEL", "als").replace("bootstrap: 20}", "bootstrap: 0, params: {factor: 4}}")
    with pytest.raises(ConfigError, match="valid: factors"):
        train_ranking(lines, parse_settings(bad))
