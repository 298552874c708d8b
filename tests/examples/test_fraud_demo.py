"""``loopml demo fraud``'s report: the before/after table, the cycles and the day-by-day figures."""

from __future__ import annotations

from typing import Any

import pytest

from loopml.examples import write_example
from loopml.examples.fraud import demo as fraud
from loopml.examples.fraud.loop import LOOP_SETTINGS, configure


def _summary() -> dict[str, Any]:
    return {
        "rows": 1000,
        "ap_before_change": 0.75,
        "ap_after_change_old_model": 0.11,
        "ap_after_promotion": 0.2,
        "ap_regime_oracle": 0.17,
        "ap_no_label_delay": 0.16,
        "ap_loop_same_days": 0.15,
        "steady_from_day": 148,
        "ap_loop_steady": 0.61,
        "ap_regime_oracle_steady": 0.63,
        "ap_no_label_delay_steady": 0.64,
        "periods": [
            {
                "version": 3,
                "trained_day": 140,
                "first_day": 141,
                "last_day": 181,
                "days": 41,
                "frauds": 700,
                "ap_loop": 0.2,
                "ap_regime_oracle": 0.27,
                "ap_no_label_delay": 0.25,
            }
        ],
        "promotions": 1,
        "rollbacks": 0,
        "promotion_day": 140,
        "cycles": [
            {
                "day": 133,
                "status": "rejected",
                "challenger_version": 2,
                "reasons": ["calibration"],
                "triggers": [],
            },
            {
                "day": 140,
                "status": "promoted",
                "challenger_version": 3,
                "reasons": ["gain +0.4"],
                "triggers": [],
            },
        ],
        "alerts": {"performance": 3},
        "days": [{"day": 139, "version": 1, "ap": 0.03}, {"day": 141, "version": 3, "ap": 0.23}],
    }


def test_render_shows_the_loop_before_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    fraud.render(_summary())
    out = capsys.readouterr().out
    assert "after the first promotion (day 140)" in out and "0.2000" in out
    assert "same days: full knowledge of the new regime" in out and "0.1700" in out and "0.6300" in out
    assert "same days: no label delay" in out and "0.1600" in out and "0.6400" in out
    assert "from day 148 (steady): the loop" in out and "0.6100" in out
    # the served model against the regime oracle and its no-delay counterpart
    assert "141-181" in out and "0.2700" in out and "0.2500" in out
    assert "day 133: cycle rejected (challenger v2): calibration" in out
    assert "v3" in out and "0.230" in out
    assert "[{" not in out  # lists and dicts go to their own tables, not into the summary's cells


def test_configure_merges_the_loop_policy_into_the_project(tmp_path: Any) -> None:
    write_example("fraud", tmp_path, days=3, n_customers=20, n_terminals=50, regime_change_day=None)
    configure(tmp_path, quick=True)
    from loopml.config import load_settings

    settings = load_settings(tmp_path)
    assert settings.retrain.performance_floor == LOOP_SETTINGS["retrain"]["performance_floor"]
    assert settings.source.watermark == "tx_datetime"
    assert settings.train.params["n_estimators"] == 60
    assert settings.train.params["learning_rate"] == 0.05  # the example's own settings are kept
