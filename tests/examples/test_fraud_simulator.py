"""Tests for the simulated credit-card fraud data set (``loopml.examples.fraud``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from loopml.examples.fraud import SimulationConfig, simulate

EXPECTED_DTYPES = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[ns]",
    "customer_id": "int64",
    "terminal_id": "int64",
    "tx_amount": "float64",
    "tx_time_seconds": "int64",
    "tx_time_days": "int64",
    "tx_fraud": "int64",
    "tx_fraud_scenario": "int64",
}
CHANGE_DAY = 120  # the default regime_change_day


@pytest.fixture(scope="module")
def default_frame() -> pd.DataFrame:
    """One default-config run shared by the module."""
    return simulate()


@pytest.fixture(scope="module")
def no_change_frame() -> pd.DataFrame:
    """The default run with the regime change disabled."""
    return simulate(regime_change_day=None)


def _split(frame: pd.DataFrame, day: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fraudulent rows before and from ``day``."""
    fraud = frame[frame["tx_fraud"] == 1]
    return fraud[fraud["tx_time_days"] < day], fraud[fraud["tx_time_days"] >= day]


def test_same_seed_gives_identical_frame() -> None:
    pdt.assert_frame_equal(simulate(days=20, seed=7), simulate(days=20, seed=7))


def test_config_and_overrides_agree() -> None:
    cfg = SimulationConfig(days=15, seed=3)
    pdt.assert_frame_equal(simulate(cfg), simulate(days=15, seed=3))
    pdt.assert_frame_equal(simulate(cfg, seed=4), simulate(days=15, seed=4))


def test_different_seeds_differ() -> None:
    first, second = simulate(days=20, seed=1), simulate(days=20, seed=2)
    assert len(first) != len(second) or not first.equals(second)


def test_default_size_and_fraud_rate(default_frame: pd.DataFrame) -> None:
    assert 270_000 <= len(default_frame) <= 330_000
    assert 0.003 < default_frame["tx_fraud"].mean() < 0.01


def test_columns_and_dtypes(default_frame: pd.DataFrame) -> None:
    assert list(default_frame.columns) == list(EXPECTED_DTYPES)
    assert {c: str(t) for c, t in default_frame.dtypes.items()} == EXPECTED_DTYPES
    assert isinstance(default_frame.index, pd.RangeIndex)


def test_sorted_by_time_with_unique_ids(default_frame: pd.DataFrame) -> None:
    assert default_frame["tx_datetime"].is_monotonic_increasing
    assert default_frame["tx_time_seconds"].is_monotonic_increasing
    np.testing.assert_array_equal(default_frame["transaction_id"].to_numpy(), np.arange(len(default_frame)))


def test_time_columns_are_consistent(default_frame: pd.DataFrame) -> None:
    seconds = default_frame["tx_time_seconds"]
    expected = pd.Timestamp("2026-01-01") + pd.to_timedelta(seconds, unit="s")
    assert (default_frame["tx_datetime"] == expected).all()
    assert (default_frame["tx_time_days"] == seconds // 86_400).all()
    assert default_frame["tx_time_days"].between(0, 181).all()


def test_values_in_range(default_frame: pd.DataFrame) -> None:
    cfg = SimulationConfig()
    assert (default_frame["tx_amount"] >= 0).all()
    assert np.allclose(default_frame["tx_amount"], default_frame["tx_amount"].round(2))
    assert default_frame["customer_id"].between(0, cfg.n_customers - 1).all()
    assert default_frame["terminal_id"].between(0, cfg.n_terminals - 1).all()
    assert set(default_frame["tx_fraud"].unique()) == {0, 1}
    assert ((default_frame["tx_fraud_scenario"] > 0) == (default_frame["tx_fraud"] == 1)).all()


def test_all_scenarios_present_before_change(default_frame: pd.DataFrame) -> None:
    before, _ = _split(default_frame, CHANGE_DAY)
    assert set(before["tx_fraud_scenario"].unique()) == {1, 2, 3}


def test_scenario_one_is_the_amount_rule_before_change(default_frame: pd.DataFrame) -> None:
    early = default_frame[default_frame["tx_time_days"] < CHANGE_DAY]
    assert (early.loc[early["tx_fraud_scenario"] == 1, "tx_amount"] > 220).all()
    legit = early[early["tx_fraud"] == 0]
    assert (legit["tx_amount"] <= 220).all()


def test_regime_change_shifts_fraud_pattern(default_frame: pd.DataFrame) -> None:
    before, after = _split(default_frame, CHANGE_DAY)
    share_before = (before["tx_fraud_scenario"] == 1).mean()
    share_after = (after["tx_fraud_scenario"] == 1).mean()
    assert share_before > 0.04
    assert share_after < 0.01
    assert after["tx_amount"].mean() < 0.5 * before["tx_amount"].mean()
    assert len(after) > 100  # still something to learn after the switch


def test_without_regime_change_pattern_is_stable(no_change_frame: pd.DataFrame) -> None:
    before, after = _split(no_change_frame, CHANGE_DAY)
    assert (after["tx_fraud_scenario"] == 1).mean() > 0.04
    ratio = after["tx_amount"].mean() / before["tx_amount"].mean()
    assert 0.6 < ratio < 1.6
    assert 0.003 < no_change_frame["tx_fraud"].mean() < 0.01


def test_small_run_works() -> None:
    frame = simulate(days=5, n_customers=50, n_terminals=100, regime_change_day=2)
    assert frame["tx_time_days"].max() <= 4
    assert list(frame.columns) == list(EXPECTED_DTYPES)


def test_unknown_override_raises_type_error() -> None:
    with pytest.raises(TypeError, match="not_a_knob"):
        simulate(days=5, not_a_knob=1)


def test_config_is_frozen_and_validated() -> None:
    cfg = SimulationConfig()
    name = "days"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, name, 3)
    with pytest.raises(ValueError):
        SimulationConfig(days=0)


def test_default_change_day() -> None:
    assert SimulationConfig().regime_change_day == CHANGE_DAY
