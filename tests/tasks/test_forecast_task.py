"""The forecast task: metrics against hand-computed values, the panel, point-in-time features, and
backtest origins that never let the future in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.config import ForecastConfig
from loopml.errors import ConfigError, DataError, InputError
from loopml.tasks import get_task
from loopml.tasks.forecast import DemandRegressor, Panel, demand_panel, feature_rows, metrics
from loopml.tasks.forecast_backtest import backtest, origin_plan, panel_rows

CONFIG = ForecastConfig(item="item", group_column="country", groups=["UK"], min_active=3, series_per_group=2)


def lines(weeks: int = 30, seed: int = 0) -> pd.DataFrame:
    """Transaction lines: 3 items in the UK and 2 elsewhere, Monday 2021-01-04 onwards, daily lines."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2021-01-04 09:00", periods=weeks * 7, freq="D")
    rows = []
    for item, country, mean in [
        ("A", "UK", 20),
        ("B", "UK", 5),
        ("C", "UK", 1),
        ("A", "FR", 3),
        ("D", "DE", 2),
    ]:
        for day in days:
            rows.append({"item": item, "country": country, "time": day, "qty": rng.poisson(mean)})
    return pd.DataFrame(rows)


def test_metrics_match_hand_computed_values() -> None:
    y, p, scale = (
        np.array([10.0, 0.0, 5.0, 4.0]),
        np.array([8.0, 1.0, 5.0, 0.0]),
        np.array([2.0, 2.0, 1.0, 4.0]),
    )
    m = metrics(y, p, mase_scale=scale)
    # errors 2, 1, 0, 4: WAPE 7/19, MASE mean(1, .5, 0, 1), sMAPE mean(4/18, 2/1, 0, 8/4)
    assert m["wape"] == pytest.approx(7 / 19)
    assert m["mase"] == pytest.approx(2.5 / 4)
    assert m["smape"] == pytest.approx((4 / 18 + 2 + 0 + 2) / 4)
    assert m["mae"] == pytest.approx(7 / 4)
    assert m["bias"] == pytest.approx((14 - 19) / 19)
    assert "mase" not in metrics(y, p)
    # Actual and forecast both 0 is a perfect forecast (sMAPE 0), not 0/0.
    assert metrics(np.zeros(2), np.zeros(2))["smape"] == 0.0


def test_task_is_registered_lower_is_better() -> None:
    task = get_task("forecast")
    assert task.primary == "mase" and not task.greater_is_better and task.trainer is not None
    assert task.metric_inputs == ("mase_scale",)


def test_panel_groups_selection_and_partial_weeks() -> None:
    frame = lines(weeks=10)
    # A partial first week (starting on a Wednesday) and a partial last week are left out.
    frame = frame[frame["time"] >= "2021-01-06"]
    frame = pd.concat(
        [frame, pd.DataFrame([{"item": "A", "country": "UK", "time": pd.Timestamp("2021-03-15"), "qty": 99}])]
    )
    panel = demand_panel(frame, CONFIG, "qty", "time")
    assert panel.periods[0] == pd.Timestamp("2021-01-11") and panel.periods[-1] == pd.Timestamp("2021-03-08")
    # Two series per group: the UK's top 2 by volume (A, B) and the rest's (FR and DE pooled by item).
    assert sorted(zip(panel.items, panel.groups, strict=True)) == [
        ("A", "UK"),
        ("A", "rest"),
        ("B", "UK"),
        ("D", "rest"),
    ]
    week = (frame["time"] >= "2021-01-11") & (frame["time"] < "2021-01-18")
    a_uk = frame[week & (frame["item"] == "A") & (frame["country"] == "UK")]["qty"].sum()
    assert panel.values[panel.find("A", "UK"), 0] == a_uk


def test_features_are_point_in_time() -> None:
    panel = demand_panel(lines(), CONFIG, "qty", "time")
    before = feature_rows(panel, 12, range(1, 5))
    assert panel.orders is not None and panel.orders.shape == panel.values.shape
    changed, orders = panel.values.copy(), panel.orders.copy()
    changed[:, 13:] *= 50  # the future changes (demand and order counts) ...
    orders[:, 13:] += 7
    after = feature_rows(
        Panel(changed, panel.items, panel.groups, panel.periods, "W", orders), 12, range(1, 5)
    )
    features = [c for c in before.columns if c not in ("actual",)]
    pd.testing.assert_frame_equal(before[features], after[features])  # ... the features do not
    assert not np.allclose(before["actual"], after["actual"])
    row = before[(before["item"] == "A") & (before["group"] == "UK") & (before["horizon"] == 2)].iloc[0]
    series = panel.values[panel.find("A", "UK")]
    assert row["actual"] == series[14] and row["naive"] == series[12]
    assert row["moving_average"] == pytest.approx(series[9:13].mean())
    assert row["mase_scale"] == pytest.approx(np.abs(np.diff(series[:13])).mean())
    assert row["period"] == panel.periods[14]
    orders = panel.orders[panel.find("A", "UK")]
    assert row["orders_trend"] == pytest.approx(orders[9:13].mean() / orders[:13][-13:].mean())


def test_backtest_origins_never_see_their_future() -> None:
    config = CONFIG.model_copy(update={"origins": 3, "tuning_origins": 2, "horizon": 2})
    origins, tuning = origin_plan(30, config)
    assert origins == [25, 26, 27]  # the newest with every horizon observed (27 + 2 = 29, the last)
    assert max(tuning) + config.horizon <= origins[0]  # tuning targets end before the backtest starts
    with pytest.raises(DataError, match="too few"):
        origin_plan(12, config)
    panel = demand_panel(lines(), CONFIG, "qty", "time")
    rows = panel_rows(panel, 2)
    assert (rows["target_index"] - rows["origin_index"]).isin([1, 2]).all()
    result = backtest(panel, config, {"n_estimators": 10}, rows=rows)
    assert sorted(result.rows["origin"].unique()) == [panel.periods[o] for o in origins]
    assert 0.0 <= result.blend <= 1.0 and len(result.output) == len(result.rows)


def test_training_rows_stop_at_the_origin() -> None:
    from loopml.tasks import forecast_backtest

    panel = demand_panel(lines(), CONFIG, "qty", "time")
    rows = panel_rows(panel, 3)
    seen: list[int] = []
    original = DemandRegressor.fit

    def spy(self: DemandRegressor, X: pd.DataFrame, y: np.ndarray) -> DemandRegressor:
        seen.append(int(X["target_index"].max()))
        return original(self, X, y)

    DemandRegressor.fit = spy  # type: ignore[method-assign]
    try:
        forecast_backtest._forecast_at(rows, [20, 24], {"n_estimators": 5}, 0)
    finally:
        DemandRegressor.fit = original  # type: ignore[method-assign]
    assert seen == [20, 24]


def test_regressor_refuses_raw_rows_and_scales_back_to_units() -> None:
    panel = demand_panel(lines(), CONFIG, "qty", "time")
    rows = panel_rows(panel, 2)
    rows = rows[rows["actual"].notna()]
    model = DemandRegressor(n_estimators=20).fit(rows, rows["actual"])
    predicted = model.predict(rows)
    assert (predicted >= 0).all() and np.corrcoef(predicted, rows["actual"])[0, 1] > 0.8
    with pytest.raises(InputError, match="/forecast"):
        model.predict(rows[["item", "group"]])
    blended = DemandRegressor(n_estimators=20, blend=0.0).fit(rows, rows["actual"]).predict(rows)
    np.testing.assert_allclose(blended, rows["moving_average"])
    # The safe format (skops, trusting only loopml's list) round-trips it, in a pipeline as registered.
    from sklearn.pipeline import Pipeline

    from loopml.registry.serialize import dumps, loads

    pipeline = Pipeline([("features", "passthrough"), ("model", model)])
    np.testing.assert_array_equal(loads(dumps(pipeline)).predict(rows), predicted)


def test_missing_forecast_section_is_a_config_error() -> None:
    from loopml.config import parse_settings
    from loopml.tasks.forecast import forecast_config

    settings = parse_settings("name: x\ntask: forecast\nsource: {path: a.csv}\ntarget: qty\n")
    with pytest.raises(ConfigError, match="forecast:"):
        forecast_config(settings)


def test_champion_is_compared_only_from_origins_it_never_saw_past() -> None:
    from loopml.config import GateConfig
    from loopml.retrain.gate import gate

    task = get_task("forecast")
    assert task.unseen is not None
    holdout = pd.DataFrame({"origin": pd.to_datetime(["2011-10-24", "2011-10-31", "2011-11-07"])})
    mask = task.unseen(holdout, {"periods": ["2010-12-06", "2011-10-31"]})
    assert mask.tolist() == [False, True, True]  # at 10-24 the champion had trained on later weeks
    # The gate compares the challenger's score on those same rows, not its whole backtest's.
    metrics = {"metric": "mase", "greater_is_better": False, "score": 0.5, "baseline_score": 1.0,
               "champion": {"version": 1, "score": 0.9, "challenger_score": 0.95}}  # fmt: skip
    verdict = gate(metrics, GateConfig())
    beats = next(c for c in verdict.checks if c["check"] == "beats_champion")
    assert not beats["passed"] and "0.9500" in beats["detail"]
