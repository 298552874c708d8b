"""Evaluation helpers: the cost-based threshold against brute force, bootstrap intervals, calibration,
confusion counts and per-segment metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.tasks import get_task
from loopml.train.evaluate import bootstrap_ci, calibration, confusion, cost_threshold, segment_metrics


def brute_force_cost(y: np.ndarray, score: np.ndarray, fn_cost: float, fp_cost: float) -> float:
    """The cheapest ``fn_cost * FN + fp_cost * FP`` over flagging ``score >= t`` for every candidate t
    (each distinct score, and above the highest score: flag nothing)."""
    best = float("inf")
    for t in [*np.unique(score), np.inf]:
        flagged = score >= t
        cost = fn_cost * np.sum(~flagged & (y == 1)) + fp_cost * np.sum(flagged & (y == 0))
        best = min(best, float(cost))
    return best


cases = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        # Few distinct values, so ties are common; also plain floats.
        st.one_of(
            st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]), min_size=n, max_size=n),
            st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
        ),
    )
)


@settings(max_examples=120, deadline=None)
@given(
    case=cases,
    fn_cost=st.sampled_from([0.0, 1.0, 2.5, 10.0, 100.0]),
    fp_cost=st.sampled_from([0.0, 1.0, 3.0, 50.0]),
    one_class=st.sampled_from([None, 0, 1]),
)
def test_cost_threshold_equals_brute_force(
    case: tuple[list[int], list[float]], fn_cost: float, fp_cost: float, one_class: int | None
) -> None:
    labels, scores = case
    y = np.array(labels if one_class is None else [one_class] * len(labels))
    score = np.array(scores, dtype=float)
    found = cost_threshold(y, score, fn_cost, fp_cost)
    assert found["cost"] == pytest.approx(brute_force_cost(y, score, fn_cost, fp_cost), abs=1e-9)
    # The threshold it returns really gives that cost and flags that many rows.
    c = confusion(y, score, found["threshold"])
    assert fn_cost * c["fn"] + fp_cost * c["fp"] == pytest.approx(found["cost"], abs=1e-9)
    assert c["tp"] + c["fp"] == found["flagged"]


def test_cost_threshold_docstring_case() -> None:
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    # Flag 0.8 and 0.35 (one false alarm at 0.4): cost 1, against 10 for missing the fraud at 0.35.
    assert cost_threshold(y, s, fn_cost=10, fp_cost=1) == {"threshold": 0.35, "cost": 1.0, "flagged": 3}


def test_cost_threshold_never_splits_tied_scores() -> None:
    y, s = np.array([1, 0, 0, 0]), np.array([0.5, 0.5, 0.5, 0.1])
    # Flagging the tied 0.5s costs two false alarms (2); flagging nothing misses one fraud (5).
    found = cost_threshold(y, s, fn_cost=5, fp_cost=1)
    assert found == {"threshold": 0.5, "cost": 2.0, "flagged": 3}


@pytest.mark.parametrize(
    ("y", "fn_cost", "fp_cost"),
    [
        ([0, 0, 0, 0], 10.0, 1.0),  # no positives: any flag is a false alarm
        ([0, 1, 0, 0], 1.0, 100.0),  # a false alarm costs far more than a miss
    ],
)
def test_cost_threshold_flags_nothing_when_that_is_cheapest(
    y: list[int], fn_cost: float, fp_cost: float
) -> None:
    labels, score = np.array(y), np.array([0.9, 0.2, 0.6, 0.4])
    found = cost_threshold(labels, score, fn_cost, fp_cost)
    assert found["flagged"] == 0
    assert found["threshold"] > score.max()
    assert (
        confusion(labels, score, found["threshold"])["tp"]
        + confusion(labels, score, found["threshold"])["fp"]
        == 0
    )
    assert found["cost"] == fn_cost * labels.sum()


def _binary_sample(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(scale=0.2, size=n), 0.001, 0.999)
    return y, score


def _binary_metrics(y: np.ndarray, output: np.ndarray) -> dict[str, float]:
    return get_task("binary").metrics(y, output, k=50)


def test_bootstrap_interval_contains_the_point_estimate() -> None:
    y, score = _binary_sample()
    point = _binary_metrics(y, score)
    ci = bootstrap_ci(y, score, _binary_metrics, n=200, seed=3)
    for name in ("roc_auc", "average_precision", "brier", "log_loss", "positive_rate"):
        lo, hi = ci[name]
        assert lo < point[name] < hi, (name, lo, point[name], hi)
        assert hi - lo < 0.2  # 400 rows: a tight interval, not a degenerate one


def test_bootstrap_is_deterministic_by_seed() -> None:
    y, score = _binary_sample()
    a = bootstrap_ci(y, score, _binary_metrics, n=50, seed=7)
    assert a == bootstrap_ci(y, score, _binary_metrics, n=50, seed=7)
    assert a != bootstrap_ci(y, score, _binary_metrics, n=50, seed=8)


def test_bootstrap_drops_metrics_that_are_never_defined_and_can_be_turned_off() -> None:
    y, score = np.zeros(30, dtype=int), np.linspace(0, 1, 30)
    ci = bootstrap_ci(y, score, _binary_metrics, n=20)
    assert "roc_auc" not in ci and "brier" in ci
    assert bootstrap_ci(y, score, _binary_metrics, n=0) == {}


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(1, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 1), min_size=n, max_size=n),
            st.lists(
                st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 1.0])), min_size=n, max_size=n
            ),
        )
    ),
    bins=st.integers(1, 12),
)
def test_calibration_and_confusion_counts_sum_to_n(data: tuple[list[int], list[float]], bins: int) -> None:
    y, score = np.array(data[0]), np.array(data[1])
    curve = calibration(y, score, bins=bins)
    assert sum(b["count"] for b in curve) == len(y)
    assert len(curve) <= bins
    assert all(0.0 <= b["observed"] <= 1.0 and 0.0 <= b["predicted"] <= 1.0 for b in curve)
    # Each bin's observed rate, weighted by its count, adds up to the overall positive rate.
    assert sum(b["observed"] * b["count"] for b in curve) == pytest.approx(y.sum())
    for threshold in (0.0, 0.5, 1.0, float(np.median(score))):
        assert sum(confusion(y, score, threshold).values()) == len(y)


def test_calibration_bins_are_ordered_by_score() -> None:
    rng = np.random.default_rng(5)
    score = 1 / (1 + np.exp(-rng.normal(size=1000)))  # no ties
    y = (rng.random(1000) < score).astype(int)
    curve = calibration(y, score, bins=10)
    predicted = [b["predicted"] for b in curve]
    assert len(curve) == 10 and predicted == sorted(predicted)
    assert all(90 <= b["count"] <= 110 for b in curve)  # quantile bins: equal-sized


def test_segment_metrics_per_value() -> None:
    rng = np.random.default_rng(1)
    region = ["north"] * 50 + ["south"] * 40 + ["east"] * 5 + [None] * 35
    frame = pd.DataFrame({"region": region})
    y = rng.normal(size=len(frame))
    predicted = y + rng.normal(scale=0.5, size=len(frame))
    metrics = get_task("regression").metrics
    out = segment_metrics(frame, ["region"], y, predicted, metrics, min_rows=30)
    rows = {r["value"]: r for r in out["region"]}
    assert set(rows) == {"north", "south", "<missing>"}  # east has too few rows
    values = np.array([r if r is not None else "<missing>" for r in region])
    for value, row in rows.items():
        mask = values == value
        assert row["rows"] == mask.sum()
        assert row["rmse"] == pytest.approx(metrics(y[mask], predicted[mask])["rmse"])
        assert row["r2"] == pytest.approx(metrics(y[mask], predicted[mask])["r2"])
    assert [r["value"] for r in out["region"]] == ["north", "south", "<missing>"]  # most frequent first
    assert segment_metrics(frame, ["region"], y, predicted, metrics, top=1)["region"][0]["value"] == "north"
