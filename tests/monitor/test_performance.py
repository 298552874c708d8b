from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.monitor import estimate_binary, prediction_times, windowed_performance
from loopml.tasks import binary


def test_estimate_equals_the_expected_metrics_of_calibrated_scores() -> None:
    rng = np.random.default_rng(0)
    score = rng.beta(0.5, 8, 40_000)
    y = (rng.random(len(score)) < score).astype(int)  # labels drawn from the scores: calibrated
    estimated = estimate_binary(score, threshold=0.3)
    realized = binary.metrics(y, score)
    assert estimated["roc_auc"] == pytest.approx(realized["roc_auc"], abs=0.01)
    assert estimated["average_precision"] == pytest.approx(realized["average_precision"], abs=0.02)
    flagged = score >= 0.3
    assert estimated["precision"] == pytest.approx(y[flagged].mean(), abs=0.02)
    assert estimated["recall"] == pytest.approx(y[flagged].sum() / y.sum(), abs=0.02)


def test_windows_report_label_coverage_and_realized_metrics_only_with_enough_labels() -> None:
    rng = np.random.default_rng(1)
    n = 3_000
    frame = pd.DataFrame(
        {
            "time": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 3 * 86_400, n), unit="s"),
            "score": rng.random(n),
        }
    )
    labels = (rng.random(n) < frame["score"]).astype(float)
    day = frame["time"].dt.day
    frame["label"] = np.where(day == 1, labels, np.where((day == 2) & (rng.random(n) < 0.5), labels, np.nan))
    rows = windowed_performance(frame.sort_values("time"), task="binary", window="1D", threshold=0.5)
    assert [r["window_start"].day for r in rows] == [1, 2, 3]
    assert rows[0]["label_coverage"] == 1.0 and "realized" in rows[0]
    assert 0.4 < rows[1]["label_coverage"] < 0.6 and "realized" in rows[1]
    assert rows[2]["labels"] == 0 and "realized" not in rows[2] and "estimated" in rows[2]
    assert sum(r["predictions"] for r in rows) == n


def test_prediction_times_fall_back_to_when_a_prediction_was_made() -> None:
    # The API logs a model's inputs; when the event time is not one, its predictions carry none.
    made = [pd.Timestamp("2026-05-01 10:00", tz="UTC"), pd.Timestamp("2026-05-01 11:00", tz="UTC")]
    frame = pd.DataFrame({"created_at": made, "inputs": [{"time": "2025-01-02T03:00:00"}, {"x": 1.0}]})
    assert prediction_times(frame, "time").tolist() == [
        pd.Timestamp("2025-01-02 03:00"),
        pd.Timestamp("2026-05-01 11:00"),
    ]
    assert prediction_times(frame, None).tolist() == [t.tz_localize(None) for t in made]
