"""Tasks: metrics on hand-computed examples, label checks, candidates, and the splits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import ConfigError, DataError
from loopml.tasks import TASKS, get_task, time_split
from loopml.tasks.binary import precision_at_k

# --- metrics, computed by hand ----------------------------------------------------------------


def test_binary_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])
    m = get_task("binary").metrics(y, score, k=2)
    # Positive/negative pairs ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); wrong: (0.35 < 0.4).
    assert m["roc_auc"] == pytest.approx(3 / 4)
    # Ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): precision 1 at recall 1/2, 2/3 at recall 1.
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["precision_at_2"] == 0.5  # top two: 0.8 (+) and 0.4 (-)
    assert m["brier"] == pytest.approx((0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    )
    assert m["positive_rate"] == 0.5


def test_binary_metrics_with_one_class_are_nan_where_undefined() -> None:
    m = get_task("binary").metrics(np.zeros(5, dtype=int), np.linspace(0.1, 0.5, 5), k=3)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])
    assert m["precision_at_3"] == 0.0
    assert m["brier"] == pytest.approx(np.mean(np.linspace(0.1, 0.5, 5) ** 2))


def test_precision_at_k_caps_k_at_the_number_of_rows() -> None:
    assert precision_at_k(np.array([1, 0, 1]), np.array([0.9, 0.5, 0.1]), 10) == pytest.approx(2 / 3)


def test_multiclass_metrics_by_hand() -> None:
    classes = np.array(["a", "b", "c"])
    y = np.array(["a", "b", "c", "a"])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    m = get_task("multiclass").metrics(y, proba, classes=classes)
    # Predicted a, b, a, b: rows 0 and 1 right.
    assert m["accuracy"] == 0.5
    # F1: a (tp 1, fp 1, fn 1) = 1/2; b (tp 1, fp 1, fn 0) = 2/3; c (tp 0) = 0.
    assert m["f1_macro"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.7) + math.log(0.8) + math.log(0.2) + math.log(0.2)) / 4
    )
    assert 0.0 <= m["roc_auc_ovr"] <= 1.0


def test_regression_metrics_by_hand() -> None:
    m = get_task("regression").metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert m["rmse"] == pytest.approx(1.0)  # sqrt((0 + 0 + 0 + 4) / 4)
    assert m["mae"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(1 - 4 / 5)  # total sum of squares around 2.5 is 5


def test_primary_metric_direction() -> None:
    assert get_task("binary").better(0.6, 0.5) and not get_task("binary").better(0.5, 0.6)
    assert get_task("regression").better(1.0, 2.0) and not get_task("regression").better(2.0, 1.0)


# --- label validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "values"),
    [
        ("binary", [0, 1, 2, 1]),
        ("binary", ["yes", "no", "yes", "no"]),
        ("binary", [1, 1, 1, 1]),
        ("multiclass", ["a", "a", "a", "a"]),
        ("regression", [1.0, 2.5, "lots", 3.0]),
    ],
)
def test_bad_labels_are_data_errors_naming_the_column(task: str, values: list[object]) -> None:
    with pytest.raises(DataError) as info:
        get_task(task).labels(pd.Series(values, name="the_target"))
    assert "the_target" in str(info.value)
    assert "\n" not in str(info.value)


def test_good_labels_pass() -> None:
    assert get_task("binary").labels(pd.Series([0, 1, 1], name="y")).tolist() == [0, 1, 1]
    assert get_task("multiclass").labels(pd.Series(["x", "y"], name="y")).tolist() == ["x", "y"]
    assert get_task("regression").labels(pd.Series(["1.5", 2], name="y")).tolist() == [1.5, 2.0]


# --- candidates and baselines -----------------------------------------------------------------


def _tiny(task: str) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    signal = X["a"].to_numpy() + 0.5 * X["b"].to_numpy()
    if task == "binary":
        return X, (signal > 0).astype(int)
    if task == "multiclass":
        return X, np.array(["lo", "mid", "hi"])[np.digitize(signal, [-0.5, 0.5])]
    return X, 3 * signal + rng.normal(scale=0.1, size=80)


# Tasks with their own trainer (forecast) fit rows of their own making, tested in their own files.
CASES = [(task, name) for task in TASKS for name in TASKS[task].candidates if TASKS[task].trainer is None]


@pytest.mark.parametrize(("task_name", "candidate"), CASES)
def test_every_candidate_fits_on_a_tiny_frame(task_name: str, candidate: str) -> None:
    task = get_task(task_name)
    X, y = _tiny(task_name)
    params = {
        "lightgbm": {"n_estimators": 5, "n_jobs": 1, "min_child_samples": 5},
        "hist_gradient_boosting": {"max_iter": 10},
    }.get(candidate, {})
    model = task.candidate(candidate, params, 0).fit(X, y)
    output = task.predict(model, X)
    assert len(output) == len(X) and np.all(np.isfinite(output))
    if task_name == "multiclass":
        assert output.shape == (80, 3)
        assert np.allclose(output.sum(axis=1), 1.0)
    baseline = task.make_baseline().fit(X, y)
    # A fitted candidate beats the dummy on the rows it learned from.
    ours = task.metrics(y, output, k=10, classes=getattr(model, "classes_", None))[task.primary]
    dummy = task.metrics(y, task.predict(baseline, X), k=10, classes=getattr(baseline, "classes_", None))
    assert task.better(ours, dummy[task.primary])


@pytest.mark.parametrize(
    ("task_name", "wrong"), [("binary", "ridge"), ("regression", "logistic"), ("multiclass", "xgb")]
)
def test_invalid_candidate_is_a_one_line_config_error_listing_valid_ones(task_name: str, wrong: str) -> None:
    task = get_task(task_name)
    with pytest.raises(ConfigError) as info:
        task.candidate(wrong, {}, 0)
    message = str(info.value)
    assert "\n" not in message
    assert wrong in message
    assert all(name in message for name in task.candidates)


def test_unknown_task_suggests_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'binary'"):
        get_task("binery")


# --- splits -----------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    minutes=st.lists(st.integers(0, 15), min_size=10, max_size=80),
    fraction=st.floats(0.05, 0.6),
)
def test_time_split_never_puts_one_timestamp_on_both_sides(minutes: list[int], fraction: float) -> None:
    times = pd.Timestamp("2026-01-01") + pd.to_timedelta(minutes, unit="min")
    frame = pd.DataFrame({"ts": times, "x": range(len(minutes))}).sample(frac=1.0, random_state=1)
    try:
        train, holdout = time_split(frame, "ts", fraction)
    except DataError:
        # Only when the cut would leave one side empty: everything at one time, or the holdout's
        # share of rows reaching back to the earliest time.
        cut = np.sort(frame["ts"].to_numpy())[int(len(frame) * (1 - fraction))]
        assert cut == frame["ts"].min()
        return
    t = frame["ts"].to_numpy()
    assert len(train) + len(holdout) == len(frame)
    assert len(np.intersect1d(train, holdout)) == 0
    assert t[train].max() < t[holdout].min()  # the holdout is the newest rows; no instant on both sides
    assert len(holdout) >= len(frame) - int(len(frame) * (1 - fraction))


def test_time_split_keeps_the_requested_share_without_ties() -> None:
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=100, freq="h")[::-1]})
    _, holdout = time_split(frame, "ts", 0.2)
    assert len(holdout) == 20
    assert sorted(holdout.tolist()) == list(range(20))  # the file is newest first


def test_time_split_refuses_a_single_instant_and_tiny_data() -> None:
    same = pd.DataFrame({"ts": [pd.Timestamp("2026-01-01")] * 20})
    with pytest.raises(DataError, match="ts"):
        time_split(same, "ts", 0.2)
    with pytest.raises(DataError, match="10"):
        time_split(same.head(5), "ts", 0.2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_split_without_time_keeps_both_classes_on_both_sides(seed: int) -> None:
    y = np.array([1] * 6 + [0] * 94)  # 6% positives: a random split could easily miss them
    train, holdout = time_split(pd.DataFrame({"x": range(100)}), None, 0.2, labels=y, seed=seed)
    assert len(holdout) == 20 and len(train) == 80
    assert set(y[train]) == {0, 1} and set(y[holdout]) == {0, 1}
    assert np.sum(y[holdout]) in (1, 2)  # proportional: 6 * 0.2


def test_split_without_time_or_labels_takes_the_last_rows() -> None:
    train, holdout = time_split(pd.DataFrame({"x": range(50)}), None, 0.2)
    assert train.tolist() == list(range(40)) and holdout.tolist() == list(range(40, 50))
