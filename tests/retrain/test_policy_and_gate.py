from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopml.config import GateConfig
from loopml.errors import ConfigError
from loopml.retrain import cron_due, gate, parse_cron


def _metrics(score: float, champion: float | None, **extra: object) -> dict:
    metrics = {
        "metric": "average_precision",
        "greater_is_better": True,
        "score": score,
        "baseline_score": 0.01,
    }
    if champion is not None:
        metrics["champion"] = {"version": 1, "score": champion}
    return {**metrics, **extra}


def test_gate_needs_the_minimum_improvement_over_the_champion() -> None:
    config = GateConfig(min_improvement=0.01)
    assert gate(_metrics(0.62, 0.60), config).passed
    rejected = gate(_metrics(0.605, 0.60), config)
    assert not rejected.passed and "needed 0.01" in rejected.reasons[0]


def test_gate_refuses_a_model_no_better_than_the_dummy() -> None:
    assert not gate(_metrics(0.009, None), GateConfig()).passed


def test_gate_lower_is_better_metrics() -> None:
    metrics = {
        "metric": "rmse",
        "greater_is_better": False,
        "score": 9.0,
        "baseline_score": 20.0,
        "champion": {"version": 1, "score": 10.0},
    }
    assert gate(metrics, GateConfig(min_improvement=0.5)).passed
    assert not gate({**metrics, "score": 9.8}, GateConfig(min_improvement=0.5)).passed


def test_gate_checks_segments_and_calibration() -> None:
    segments = {"country": [{"value": "UK", "rows": 100, "average_precision": 0.5}]}
    champion = {
        "version": 1,
        "score": 0.5,
        "segments": {"country": [{"value": "UK", "average_precision": 0.7}]},
    }
    result = gate(
        {**_metrics(0.7, None), "champion": champion, "segments": segments},
        GateConfig(segment_tolerance=0.05),
    )
    assert not result.passed and any("country=UK" in r for r in result.reasons)
    skewed = [{"predicted": 0.5, "observed": 0.1, "count": 100}]
    assert not gate(_metrics(0.7, 0.5, calibration=skewed), GateConfig()).passed


def test_cron() -> None:
    assert sorted(parse_cron("0 3 * * 1-5")[1]) == [3]
    last, now = datetime(2026, 1, 5, 2, 0, tzinfo=UTC), datetime(2026, 1, 5, 3, 30, tzinfo=UTC)  # a Monday
    assert cron_due("0 3 * * 1-5", last, now)
    assert not cron_due("0 3 * * 0", last, now)  # Sundays only
    assert not cron_due("0 3 * * *", now, now)
    with pytest.raises(ConfigError, match="5 fields"):
        parse_cron("0 3 * *")
    with pytest.raises(ConfigError, match="'61'"):
        parse_cron("61 * * * *")
