"""Sequence window features: hand-computed values, point-in-time, per entity, any row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from loopml.errors import DataError
from loopml.features import sequences
from loopml.features.sequences import CycleWindows, informative_columns


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "engine": [1, 1, 1, 1, 2, 2],
            "cycle": [1, 2, 3, 4, 1, 2],
            "s": [1.0, 3.0, 8.0, 4.0, 100.0, 90.0],
            "flat": [5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
        }
    )


def test_values_match_hand_computation() -> None:
    out = CycleWindows("engine", "cycle", ["s", "flat"], window=3).fit(_rows()).transform(_rows())
    assert list(out.columns) == ["cycle", "s", "s_mean_3", "s_std_3", "s_slope_3"]  # flat: constant
    # engine 1, cycle 4: window (3, 8, 4) at cycles (2, 3, 4): mean 5, sample std sqrt(7), slope 0.5
    last = out.loc[3]
    assert last["s_mean_3"] == pytest.approx(5.0)
    assert last["s_std_3"] == pytest.approx(np.sqrt(((3 - 5) ** 2 + (8 - 5) ** 2 + (4 - 5) ** 2) / 2))
    assert last["s_slope_3"] == pytest.approx(((-1) * (3 - 5) + 0 + 1 * (4 - 5)) / 2)
    # engine 1, cycle 2: only cycles 1-2 so far; the slope is (3 - 1) / (2 - 1)
    assert [out.at[1, "s_mean_3"], out.at[1, "s_slope_3"]] == pytest.approx([2.0, 2.0])
    # a unit's first reading: mean is the reading, std and slope undefined
    assert out.at[4, "s_mean_3"] == 100.0 and out["s_std_3"].isna().tolist()[4]


def test_a_row_never_sees_later_rows_or_other_entities() -> None:
    base = _rows()
    windows = CycleWindows("engine", "cycle", ["s"], window=3).fit(base)
    before = windows.transform(base)
    changed = base.copy()
    changed.loc[3, "s"] = 1e6  # engine 1's last cycle
    changed.loc[5, "s"] = -1e6  # engine 2's last cycle
    after = windows.transform(changed)
    assert before.iloc[[0, 1, 2, 4]].equals(after.iloc[[0, 1, 2, 4]])
    assert after.loc[4, "s_mean_3"] == 100.0  # engine 2 starts fresh after engine 1's rows


def test_row_order_and_blocks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "engine": np.repeat(np.arange(5), 40),
            "cycle": np.tile(np.arange(1, 41), 5),
            "s": rng.normal(size=200).cumsum(),
        }
    )
    windows = CycleWindows("engine", "cycle", ["s"], window=7).fit(frame)
    expected = windows.transform(frame)
    monkeypatch.setattr(sequences, "_BLOCK", 11)  # blocks that cut through engines
    shuffled = frame.sample(frac=1.0, random_state=1)
    got = windows.transform(shuffled).loc[frame.index]
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    reference = frame.groupby("engine")["s"].rolling(7, min_periods=1).std().reset_index(level=0, drop=True)
    np.testing.assert_allclose(expected["s_std_7"], reference, equal_nan=True)


def test_recent_readings_give_the_same_features_as_the_whole_history() -> None:
    frame = pd.DataFrame({"engine": 1, "cycle": np.arange(1, 51), "s": np.sin(np.arange(50.0))})
    windows = CycleWindows("engine", "cycle", ["s"], window=10).fit(frame)
    whole = windows.transform(frame).iloc[-1]
    recent = windows.transform(frame.tail(10)).iloc[-1]
    assert whole.equals(recent)  # bit for bit: the API and batch scoring agree


def test_informative_columns_and_errors() -> None:
    assert informative_columns(_rows(), ["s", "flat"]) == ["s"]
    windows = CycleWindows("engine", "cycle", ["s"], window=3)
    with pytest.raises(NotFittedError):
        windows.transform(_rows())
    with pytest.raises(DataError, match="need column"):
        CycleWindows("unit", "cycle").fit(_rows())
    with pytest.raises(DataError, match="flag are not numeric"):
        CycleWindows("engine", "cycle", ["flag"]).fit(_rows().assign(flag="on"))
    with pytest.raises(DataError, match="window must be >= 2"):
        CycleWindows("engine", "cycle", window=1).fit(_rows())
    with pytest.raises(DataError, match="need column"):
        windows.fit(_rows()).transform(_rows().drop(columns="s"))
