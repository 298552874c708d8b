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
    # No champion calibration on the same rows (an older record): only the optional absolute floor.
    assert gate(_metrics(0.7, 0.5, calibration=skewed), GateConfig()).passed
    assert not gate(_metrics(0.7, 0.5, calibration=skewed), GateConfig(calibration_tolerance=0.5)).passed


def _judged(gain: dict, **champion: object) -> dict:
    """A challenger's metrics with the champion scored on the same unseen rows."""
    return {
        **_metrics(0.70, None),
        "champion": {
            "version": 1, "score": 0.60, "challenger_score": 0.70, "rows": 1000,
            "gain": {"point": 0.1, "confidence": 0.9, "resamples": 200, **gain}, **champion,
        },
    }  # fmt: skip


def test_gate_decides_with_the_paired_interval_not_a_fixed_margin() -> None:
    config = GateConfig(tolerance=0.01)
    small = gate(_judged({"mean": 0.003, "low": -0.004, "high": 0.01}), config)
    assert small.passed, small.reasons  # +0.003 was under the old fixed 0.005 margin
    assert "90% interval -0.0040 to +0.0100" in small.checks[1]["detail"]
    assert "1,000 rows neither learned from" in small.checks[1]["detail"]
    risky = gate(_judged({"mean": 0.02, "low": -0.05, "high": 0.09}), config)
    assert not risky.passed and "low end of at least -0.0100" in risky.reasons[0]
    tie = _judged({"mean": -0.002, "low": -0.008, "high": 0.004})
    newer = gate(tie, config)  # no evidence either way: the newer model (its refit learnt more) wins
    assert newer.passed and "a tie, promoted as the newer" in newer.checks[1]["detail"]
    kept = gate(tie, GateConfig(tolerance=0.01, ties="champion"))
    assert not kept.passed  # not worse beyond the tolerance, but worse in expectation
    worse = gate(_judged({"mean": -0.02, "low": -0.03, "high": -0.005}), GateConfig(tolerance=0.05))
    assert not worse.passed  # worse beyond doubt, though within the tolerance at the low end
    assert not gate(
        _judged({"mean": 0.003, "low": -0.004, "high": 0.01}), GateConfig(min_improvement=0.005)
    ).passed


def test_a_better_calibrated_challenger_passes_even_over_the_absolute_floor() -> None:
    """After a base-rate shift both are off; the rule compares them, so it never keeps the worse one."""
    better = _judged(
        {"mean": 0.018, "low": 0.002, "high": 0.03}, calibration_off=1.01, challenger_calibration_off=0.57
    )
    for config in (GateConfig(), GateConfig(calibration_tolerance=0.5)):  # the old rule: at most 50%
        result = gate(better, config)
        assert result.passed, result.reasons
    detail = next(c["detail"] for c in gate(better, GateConfig()).checks if c["check"] == "calibration")
    assert (
        detail == "mean prediction off the observed rate by 57%, champion's by 101% on the same rows "
        "(at most 10% worse)"
    )
    worse = _judged(
        {"mean": 0.018, "low": 0.002, "high": 0.03}, calibration_off=0.05, challenger_calibration_off=0.57
    )
    assert not gate(worse, GateConfig()).passed
    assert not gate(worse, GateConfig(calibration_margin=1.0, calibration_tolerance=0.5)).passed  # the floor


def test_gate_compares_latency_with_the_champions() -> None:
    fast = _judged({"mean": 0.01, "low": 0.0, "high": 0.02}, latency_us=10.0, challenger_latency_us=15.0)
    assert gate(fast, GateConfig()).passed
    slow = _judged({"mean": 0.01, "low": 0.0, "high": 0.02}, latency_us=10.0, challenger_latency_us=25.0)
    assert gate(slow, GateConfig()).passed  # 15 µs more a row: under the slack (latency_slack_us)
    assert not gate(slow, GateConfig(latency_slack_us=0)).passed
    slower = _judged({"mean": 0.01, "low": 0.0, "high": 0.02}, latency_us=200.0, challenger_latency_us=450.0)
    assert not gate(slower, GateConfig()).passed  # 2.25 times, and 250 µs more
    assert not gate(fast, GateConfig(max_latency_us=12.0)).passed
    assert (
        gate(fast, GateConfig(latency_tolerance=2.0, max_latency_us=12.0, min_improvement=0.0)).passed
        is False
    )
    both_slow = _judged({"mean": 0.01, "low": 0.0, "high": 0.02}, latency_us=30.0, challenger_latency_us=20.0)
    assert gate(both_slow, GateConfig(max_latency_us=12.0)).passed  # slow, but faster than the champion


def test_a_champion_compared_on_too_few_unseen_rows_blocks_the_promotion() -> None:
    metrics = {
        **_metrics(0.7, None),
        "champion": {"version": 1, "rows": 12, "score": None, "waiting": "12 rows"},
    }
    result = gate(metrics, GateConfig())
    assert not result.passed and result.reasons == ["no fair comparison: 12 rows"]


def test_cron() -> None:  # the whole table is in test_cron.py
    assert parse_cron("@daily") == "0 0 * * *"
    last, now = datetime(2026, 1, 5, 2, 0, tzinfo=UTC), datetime(2026, 1, 5, 3, 30, tzinfo=UTC)  # a Monday
    assert cron_due("0 3 * * 1-5", last, now)
    assert not cron_due("0 3 * * 0", last, now)  # Sundays only
    assert not cron_due("0 3 * * *", now, now)
    with pytest.raises(ConfigError, match="not 5"):
        parse_cron("0 3 * *")
    with pytest.raises(ConfigError, match="'61 \\* \\* \\* \\*': bad minute"):
        parse_cron("61 * * * *")
