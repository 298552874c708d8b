"""The label-free estimate: its metrics are scikit-learn's, its interval covers the realized value
as often as it says, it is wide where evidence is thin, and it raises no alert while its interval
still reaches the floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from loopml.monitor import LEVEL_COLOURS, expected_metrics, honest_estimate, metrics_of_labels, psi_level
from loopml.monitor.estimate import widened
from loopml.monitor.reliability import check_window, estimate_alerts
from loopml.train.calibration import ScoreCalibrator, calibration_error, fit_calibrator


def _calibrated(
    rng: np.random.Generator, n: int, a: float = 0.4, b: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    score = rng.beta(a, b, n)
    return score, (rng.random(n) < score).astype(float)


def test_metrics_of_labels_are_scikit_learns_with_ties() -> None:
    rng = np.random.default_rng(0)
    score = np.round(rng.random(3_000), 2)  # many ties
    y = (rng.random(3_000) < score).astype(float)
    found = metrics_of_labels(score, y, threshold=0.5)
    assert found["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert found["average_precision"] == pytest.approx(average_precision_score(y, score), abs=1e-12)
    flagged = score >= 0.5
    assert found["precision"] == pytest.approx(y[flagged].mean())
    assert found["recall"] == pytest.approx(y[flagged].sum() / y.sum())


def test_the_interval_covers_the_realized_value_as_often_as_it_says() -> None:
    rng = np.random.default_rng(1)
    hits, widths = [], []
    for _ in range(60):  # sixty windows of calibrated scores, each with its own labels
        score, y = _calibrated(rng, 1_500)
        estimate = expected_metrics(score, threshold=0.2)
        low, high = estimate.intervals["average_precision"]
        hits.append(low <= metrics_of_labels(score, y, 0.2)["average_precision"] <= high)
        widths.append(high - low)
    assert 0.8 <= np.mean(hits) <= 1.0  # a 90% interval
    score, _ = _calibrated(rng, 150)  # a tenth of the rows, a tenth of the positives: wider
    low, high = expected_metrics(score, threshold=0.2).intervals["average_precision"]
    assert high - low > 1.5 * np.mean(widths)


def test_a_calibrator_is_fitted_only_when_the_scores_need_one() -> None:
    rng = np.random.default_rng(2)
    score, y = _calibrated(rng, 20_000)
    assert fit_calibrator(y, score)[0] is None  # calibrated already
    squashed = score**3  # the same ranking, far too low
    calibrator, info = fit_calibrator(y, squashed)
    assert isinstance(calibrator, ScoreCalibrator) and info["method"] == "isotonic"
    assert info["error"] > info["bound"] and info["error_after"] < info["bound"]
    assert calibration_error(y, calibrator.predict(squashed)) < 0.1


def test_labels_that_contradict_the_scores_make_the_window_disagree() -> None:
    rng = np.random.default_rng(3)
    score, y = _calibrated(rng, 3_000)
    assert check_window(score, y, None, 0.2)["agrees"]
    worse = np.where(rng.random(len(score)) < 0.5, (rng.random(len(score)) < 0.3).astype(float), y)
    checked = check_window(score, worse, None, 0.2)
    assert not checked["agrees"] and "positives among" in checked["reasons"][0]


def _estimate(low: float, high: float, reliable: bool = True) -> dict:
    return {
        "values": {"average_precision": (low + high) / 2},
        "intervals": {"average_precision": [low, high]},
        "confidence": 0.9,
        "reliable": reliable,
        "reasons": [] if reliable else ["the labels say otherwise"],
        "calibration": {"used": "reference"},
    }


def test_no_alert_while_the_interval_reaches_the_floor() -> None:
    start = pd.Timestamp("2026-01-01")
    floor = {"average_precision": 0.4}
    assert estimate_alerts(_estimate(0.2, 0.45), floor, start) == []  # estimated 0.325, could be 0.45
    found = estimate_alerts(_estimate(0.1, 0.35), floor, start)
    assert [a["subject"] for a in found] == ["average_precision"] and "interval" in found[0]["message"]
    unreliable = estimate_alerts(_estimate(0.5, 0.7, reliable=False), floor, start)
    assert [a["subject"] for a in unreliable] == ["reliability"]
    assert "unreliable" in unreliable[0]["message"] and "the labels say otherwise" in unreliable[0]["message"]


def _log(rng: np.random.Generator, days: int, broken_from: int | None) -> pd.DataFrame:
    """A prediction log of calibrated scores, one day a window; from ``broken_from`` on, a third of
    the positives come from a new pattern the scores do not see (concept drift)."""
    parts = []
    for day in range(days):
        score, y = _calibrated(rng, 2_000)
        if broken_from is not None and day >= broken_from:
            y = np.maximum(y, (rng.random(len(y)) < 0.02).astype(float))
        time = (
            pd.Timestamp("2026-01-01") + pd.Timedelta(days=day) + pd.to_timedelta(np.arange(2_000), unit="s")
        )
        parts.append(pd.DataFrame({"time": time, "score": score, "label": y, "model_version": 1}))
    return pd.concat(parts, ignore_index=True)


def _honest(frame: pd.DataFrame, labelled_days: int) -> dict:
    last = frame["time"].max().normalize()
    known = frame.assign(
        label=frame["label"].where(
            frame["time"] < pd.Timestamp("2026-01-01") + pd.Timedelta(days=labelled_days)
        )
    )
    found = honest_estimate(
        known,
        frame[frame["time"] >= last],
        None,
        None,
        version=1,
        window=pd.Timedelta(days=1),
        threshold=0.2,
        min_labels=30,
        min_positives=10,
    )
    return found.to_dict()


def test_an_estimate_stays_unreliable_and_widens_once_labels_contradict_it() -> None:
    rng = np.random.default_rng(4)
    quiet = _honest(_log(rng, 6, None), labelled_days=5)
    assert quiet["reliable"] and quiet["backtest"]["windows"] == 5
    assert quiet["backtest"]["coverage"]["average_precision"] >= 0.6
    broken = _log(rng, 9, broken_from=4)
    # The labels of the first broken day (4) are in: unreliable, and re-calibrated on them.
    first = _honest(broken, labelled_days=5)
    assert not first["reliable"] and "positives among" in first["reasons"][0]
    assert first["calibration"]["used"] == "recent labels"
    # Three more labelled days: still unreliable (several disagree), re-calibrated on all of them,
    # and the estimate moved toward the truth (more positives than the scores say).
    later = _honest(broken, labelled_days=8)
    assert not later["reliable"]
    assert later["calibration"]["fitted_on"][0].startswith("2026-01-05")
    assert later["unreliable_since"] == first["unreliable_since"] == pd.Timestamp("2026-01-05")  # one alert
    assert later["expected_positives"] > quiet["expected_positives"] * 1.5


def test_drift_colours_follow_absolute_psi_thresholds() -> None:
    assert [psi_level(v) for v in (0.0, 0.099, 0.1, 0.25, 0.26, float("nan"))] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "alert",
        "ok",
    ]
    assert set(LEVEL_COLOURS) == {"ok", "warn", "alert"}


def test_a_second_source_of_uncertainty_widens_the_interval() -> None:
    score, _ = _calibrated(np.random.default_rng(5), 2_000)
    base = expected_metrics(score, threshold=0.2)
    centre = base.values["average_precision"]
    others = {"average_precision": list(centre + np.linspace(-0.1, 0.1, 21))}
    wide = widened(base, others)
    (low, high), (wide_low, wide_high) = (
        base.intervals["average_precision"],
        wide.intervals["average_precision"],
    )
    assert wide.values == base.values and wide_low < low and high < wide_high
    assert high - low < wide_high - wide_low < (high - low) + 0.2
