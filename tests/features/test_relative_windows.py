"""Relative window features (``features.windows[].relative_to``): names, values, config errors, and the
same values in training, the API's compiled path and a linear model's pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.config import parse_settings
from loopml.errors import ConfigError
from loopml.features import FeatureColumns, build_preprocessor, window_features, window_specs
from loopml.features.build import relative_features
from loopml.features.relative import WindowRatios, ratio

PROJECT = """
name: cards
source: {kind: csv, path: data.csv}
target: fraud
event_time: ts
features:
  windows:
    - {entity: card, column: amount, aggs: [count, mean], windows: [1h, 1d, 30d], relative_to: 30d}
    - {entity: shop, column: fraud, aggs: [mean], windows: [1d, 30d], label_delay: 7d, relative_to: 30d}
"""


def test_relative_features_compare_each_other_window_and_the_own_value_with_the_reference_window() -> None:
    features = parse_settings(PROJECT).features
    assert relative_features(features, numeric=["amount"]) == [
        ("card__amount__count_1h_vs_30d", "card__amount__count_1h", "card__amount__count_30d"),
        ("card__amount__mean_1h_vs_30d", "card__amount__mean_1h", "card__amount__mean_30d"),
        ("card__amount__count_1d_vs_30d", "card__amount__count_1d", "card__amount__count_30d"),
        ("card__amount__mean_1d_vs_30d", "card__amount__mean_1d", "card__amount__mean_30d"),
        ("card__amount__value_vs_mean_30d", "amount", "card__amount__mean_30d"),
        # the label is never a model input: its own value (unknown at scoring time) is never compared
        ("shop__fraud__mean_1d_vs_30d", "shop__fraud__mean_1d", "shop__fraud__mean_30d"),
    ]
    # the amount dropped from the model's inputs: only window against window
    assert "card__amount__value_vs_mean_30d" not in {n for n, _, _ in relative_features(features, numeric=[])}


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("{entity: card, column: amount, windows: [1d, 7d], relative_to: 30d}", "not one of the windows"),
        ("{entity: card, column: amount, windows: [30d], relative_to: 30d}", "at least one other window"),
        ("{entity: card, column: amount, windows: [1d, 30d], relative_to: month}", "month"),
    ],
)
def test_a_wrong_relative_to_is_a_config_error_that_says_where(window: str, message: str) -> None:
    text = "name: cards\nsource: {kind: csv, path: data.csv}\ntarget: fraud\nevent_time: ts\n"
    text += f"features:\n  windows:\n    - {window}\n"
    with pytest.raises(ConfigError) as info:
        parse_settings(text)
    assert message in str(info.value) and "features.windows" in str(info.value)


def test_ratio_is_nan_where_there_is_nothing_to_compare_with() -> None:
    got = ratio(np.array([10.0, 5.0, 1.0, np.nan, 0.0]), np.array([20.0, 0.0, np.nan, 4.0, 3.0]))
    assert np.array_equal(got, [0.5, np.nan, np.nan, np.nan, 0.0], equal_nan=True)
    step = WindowRatios(ratios=(("r", "a", "b"),))
    with pytest.raises(ValueError, match=r"\['b'\]"):
        step.fit(pd.DataFrame({"a": [1.0]}))


def _events(n: int = 400, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "ts": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(np.sort(rng.integers(0, 40 * 86400, n)), unit="s"),
            "card": rng.integers(0, 8, n),
            "shop": rng.integers(0, 5, n),
            "amount": rng.random(n) * 100,
            "fraud": (rng.random(n) < 0.2).astype(int),
        }
    )


@pytest.mark.parametrize("scale", [False, True], ids=["trees", "linear"])
def test_the_preprocessor_adds_the_relative_features_with_their_values(scale: bool) -> None:
    features = parse_settings(PROJECT).features
    events = _events()
    windows = window_features(events, window_specs(features), "ts", "id")
    frame = pd.concat([events, windows], axis=1)
    columns = FeatureColumns(numeric=("amount",), categorical=(), datetime=(), windows=tuple(windows.columns))
    pre = build_preprocessor(columns, features, scale=scale).fit(frame[columns.all])
    names = list(pre.get_feature_names_out())
    out = pd.DataFrame(pre.transform(frame[columns.all]), columns=names)
    expected = [name for name, _, _ in relative_features(features, columns.numeric)]
    assert names[-len(expected) :] == expected
    value = out["card__amount__value_vs_mean_30d"]
    mean = frame["card__amount__mean_30d"]
    if scale:  # imputed and standardised like every number a linear model gets
        assert not out.isna().any().any() and abs(value.mean()) < 1e-9
    else:
        known = mean.notna() & (mean != 0)
        assert known.sum() > 300
        assert np.allclose(value[known], frame["amount"][known] / mean[known])
        assert value[~known].isna().all()
