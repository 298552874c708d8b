"""Ranking metrics against hand-computed values, and the served-list (monitoring) view."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopml.tasks import get_task
from loopml.tasks.ranking import K_COLUMN, USER_COLUMN, metrics, per_user, ranking_metrics


def test_ndcg_recall_hit_rate_by_hand() -> None:
    # user a: 3 new items bought, ranked 1, 3 and 50 (k = 5); user b: 1 item ranked 2; user c: item never
    # ranked (NaN: already bought per the model, or outside its catalogue) counts as a miss.
    ranks = np.array([1.0, 3.0, 50.0, 2.0, np.nan])
    users = np.array(["a", "a", "a", "b", "c"])
    found = ranking_metrics(ranks, users, k=5)
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    ndcg_b = (1 / math.log2(3)) / 1.0
    assert found["ndcg"] == pytest.approx((ndcg_a + ndcg_b + 0.0) / 3)
    assert found["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert found["hit_rate"] == pytest.approx(2 / 3)
    assert found["users"] == 3


def test_recall_is_capped_at_k_relevant_items() -> None:
    # 12 relevant items, the first 10 ranked 1..10: a perfect top-10 list scores 1 on both metrics.
    ranks = np.r_[np.arange(1, 11, dtype=float), [40.0, 41.0]]
    found = ranking_metrics(ranks, np.array(["u"] * 12), k=10)
    assert found["ndcg"] == pytest.approx(1.0)
    assert found["recall"] == pytest.approx(1.0)


def test_per_user_keeps_order_of_appearance() -> None:
    ndcg, recall, hits = per_user(np.array([9.0, 1.0, 1.0]), np.array(["z", "a", "z"]), k=3)
    assert hits.tolist() == [1.0, 1.0]  # z first (it appears first), then a
    assert ndcg[1] == pytest.approx(1.0)
    assert recall.tolist() == pytest.approx([0.5, 1.0])


def test_task_metrics_dispatch_on_user_column() -> None:
    ranks = np.array([1.0, 20.0])
    with_users = metrics(
        np.ones(2), ranks, **{USER_COLUMN: np.array(["a", "b"]), K_COLUMN: np.array([10, 10])}
    )
    assert with_users["hit_rate"] == pytest.approx(0.5)
    assert with_users["ndcg"] == pytest.approx(0.5)
    # Served lists: the label is how many of a list's items the customer bought later.
    served = metrics(np.array([0.0, 2.0, 1.0, 0.0]), np.zeros(4), k=100, **{USER_COLUMN: np.full(4, np.nan)})
    assert served == {"hit_rate": 0.5, "hits_per_list": 0.75}
    assert get_task("ranking").primary == "ndcg"


def test_empty_inputs_give_nan() -> None:
    assert math.isnan(ranking_metrics(np.array([]), np.array([]), k=10)["ndcg"])
    assert math.isnan(metrics(np.array([]), np.array([]))["hit_rate"])
