"""The recommenders: exclusion of what was bought, cold start, learning structure, safe round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.errors import DataError
from loopml.registry.serialize import dumps, loads
from loopml.tasks.ranking import make_candidate
from loopml.tasks.ranking_train import wrap
from loopml.tasks.recommenders import ALSRecommender, PopularityRecommender, user_key


def two_tastes(users: int = 40, seed: int = 0) -> pd.DataFrame:
    """Half the users buy from items a0..a9, half from b0..b9; 'a0'/'b0' are the best sellers."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        group = "a" if u % 2 == 0 else "b"
        country = "France" if group == "a" else "Germany"
        picks = {f"{group}0", *(f"{group}{i}" for i in rng.choice(10, size=5, replace=False))}
        rows += [{"CustomerID": float(1000 + u), "StockCode": item, "Country": country} for item in picks]
    rows.append({"CustomerID": 5000.0, "StockCode": "a0", "Country": "Spain"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", ["popularity", "cooccurrence", "als"])
def test_never_recommends_what_was_bought(name: str) -> None:
    lines = two_tastes()
    model = make_candidate(name, {"user": "CustomerID", "item": "StockCode", "segment": "Country"}, 0)
    model.fit(lines)
    for customer, rows in lines.groupby("CustomerID"):
        found = model.recommend(customer, k=5)
        assert found.known
        assert not set(found.items) & set(rows["StockCode"])
        assert found.scores == sorted(found.scores, reverse=True)
    ranks = model.predict(lines)
    assert np.isnan(ranks).all()  # every row's item was bought by its customer: never ranked


@pytest.mark.parametrize("name", ["cooccurrence", "als"])
def test_personal_models_learn_the_two_tastes(name: str) -> None:
    lines = two_tastes()
    model = (
        make_candidate(name, {"user": "CustomerID", "item": "StockCode", "factors": 8}, 0)
        if name == "als"
        else (make_candidate(name, {"user": "CustomerID", "item": "StockCode"}, 0))
    )
    model.fit(lines)
    for customer in (1000.0, 1001.0):
        group = "a" if customer == 1000.0 else "b"
        top = model.recommend(customer, k=3).items
        assert all(item.startswith(group) for item in top), (customer, top)


def test_cold_start_uses_the_segment_then_everyone() -> None:
    model = PopularityRecommender(user="CustomerID", item="StockCode", segment="Country").fit(two_tastes())
    france = model.recommend("no-such-customer", k=3, segment="France")
    assert not france.known and france.source == "popularity:France"
    assert france.items[0] == "a0" and all(i.startswith("a") for i in france.items)
    unknown_segment = model.recommend(123, k=3, segment="Atlantis", exclude=["a0"])
    assert unknown_segment.source == "popularity" and "a0" not in unknown_segment.items


def test_exclude_and_history_and_keys() -> None:
    model = ALSRecommender(user="CustomerID", item="StockCode", factors=4, iterations=3).fit(two_tastes())
    history = set(model.history("1000.0"))
    assert history and history == set(model.history(1000))
    first = model.recommend(1000, k=2).items
    again = model.recommend(1000, k=2, exclude=[first[0]]).items
    assert first[0] not in again
    assert user_key(" 17850 ") == "17850" and user_key(17850.0) == "17850"


def test_round_trip_through_the_registry_format_keeps_rankings() -> None:
    lines = two_tastes()
    for name in ("popularity", "cooccurrence", "als"):
        model = make_candidate(name, {"user": "CustomerID", "item": "StockCode", "segment": "Country"}, 0)
        pipeline = wrap(model.fit(lines))
        loaded = loads(dumps(pipeline))
        pairs = pd.DataFrame({"CustomerID": [1000.0, 1001.0, 9.0], "StockCode": ["a3", "a3", "b0"]})
        np.testing.assert_array_equal(loaded.predict(pairs), pipeline.predict(pairs))


def test_bad_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="lack column"):
        PopularityRecommender(user="customer", item="StockCode").fit(two_tastes())
    with pytest.raises(DataError, match="not fitted"):
        PopularityRecommender().recommend(1)
    empty = pd.DataFrame({"user": [None], "item": ["x"]})
    with pytest.raises(DataError, match="no purchase lines"):
        PopularityRecommender().fit(empty)
