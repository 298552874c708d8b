"""``loopml demo forecast``'s report: the model against its baselines, the weeks as actuals arrive."""

from __future__ import annotations

from typing import Any

import pytest

from loopml.examples.forecast.demo import render


def _summary() -> dict[str, Any]:
    figures = {f"{m}{s}": v for m in ("mase", "smape", "wape") for s, v in (("", 0.9), ("_naive", 1.2),
               ("_moving_average", 1.0))}  # fmt: skip
    week = {
        "week": "2011-11-07",
        "forecasts": 200,
        "actuals": 150,
        "coverage": 0.75,
        "wape": 0.58,
        "mase": None,
    }
    return {
        **figures,
        "lines": 428781,
        "mase_by_horizon": {"1.0": 0.89},
        "vs_naive": 0.25,
        "reorders": {"delivery_attempts": 98, "erp_rows": 98},
        "replay": [{"file": "week-1.parquet", "actuals_sent": 200}],
        "monitor": [week],
        "retrain": {"status": "promoted", "challenger_version": 2},
    }


def test_render_shows_the_baselines_the_weeks_and_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    render(_summary())
    out = capsys.readouterr().out
    assert "0.9000" in out and "1.2000" in out and "4-week moving average" in out
    assert "2011-11-07" in out and "75%" in out and "0.5800" in out  # a week, with MASE not known yet
    assert "reorders erp rows" in out and "retrain status" in out and "promoted" in out
    assert "428781" in out and "mase by horizon" not in out  # nested figures stay in --json
