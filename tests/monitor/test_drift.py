from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from loopml.monitor import Profile, benjamini_hochberg, bin_counts, build_profile, compare, psi


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, cats: str = "xyz") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.choice(list(cats), n),
            "c": rng.exponential(1, n),
        }
    )


@pytest.fixture(scope="module")
def profile() -> Profile:
    return build_profile(_frame(np.random.default_rng(0), 50_000), ["a", "c"], ["b"])


def test_profile_round_trips_through_json(profile: Profile) -> None:
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile
    assert sum(profile.columns["a"].shares) == pytest.approx(1.0)
    assert profile.columns["b"].categories[-2:] == ["__other__", "__missing__"]


def test_no_drift_on_the_same_distribution(profile: Profile) -> None:
    results = compare(profile, _frame(np.random.default_rng(1), 200_000))
    assert not any(r.drifted for r in results)


def test_a_shifted_numeric_and_a_new_category_drift_and_rank_first(profile: Profile) -> None:
    rng = np.random.default_rng(2)
    current = _frame(rng, 20_000, shift=0.6).assign(
        b=rng.choice(list("xyzw"), 20_000, p=[0.1, 0.1, 0.1, 0.7])
    )
    results = compare(profile, current)
    drifted = [r.column for r in results if r.drifted]
    assert set(drifted) == {"a", "b"}
    assert [r.column for r in results][:2] == drifted
    b = next(r for r in results if r.column == "b")
    assert b.top_bins[0]["bin"] == "__other__" and b.top_bins[0]["reference"] == 0.0


def test_small_windows_give_no_verdict(profile: Profile) -> None:
    current = _frame(np.random.default_rng(3), 50, shift=3.0)
    assert not any(r.drifted for r in compare(profile, current, min_rows=100))


def test_effect_size_keeps_huge_windows_from_flagging_tiny_shifts(profile: Profile) -> None:
    current = _frame(np.random.default_rng(4), 1_000_000, shift=0.02)
    a = next(r for r in compare(profile, current) if r.column == "a")
    assert a.p_value < 0.05 and not a.drifted


def test_psi_matches_its_definition() -> None:
    ref, cur = np.array([0.2, 0.3, 0.5]), np.array([0.3, 0.3, 0.4])
    expected = sum((c - r) * np.log(c / r) for r, c in zip(ref, cur, strict=True))
    assert psi(ref, cur) == pytest.approx(expected, abs=1e-12)


def test_bin_counts_cover_every_value(profile: Profile) -> None:
    values = pd.Series([np.nan, -1e9, 0.0, 1e9, np.inf])
    counts = bin_counts(values, profile.columns["a"])
    assert counts.sum() == len(values) and counts[-1] == 2  # NaN and inf are missing


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.floats(0.001, 0.2))
def test_benjamini_hochberg_matches_the_step_up_rule(p: list[float], alpha: float) -> None:
    values = np.array(p)
    rejected = benjamini_hochberg(values, alpha)
    m, order = len(values), np.sort(values)
    k = max([i + 1 for i in range(m) if order[i] <= alpha * (i + 1) / m], default=0)
    assert rejected.sum() == k
    if k:
        assert values[rejected].max() <= order[k - 1]


def test_ks_on_bins_is_close_to_the_raw_statistic() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(0, 1, 50_000), rng.normal(0.3, 1, 50_000)
    profile = build_profile(pd.DataFrame({"a": ref}), ["a"], [], bins=50)
    binned = next(r for r in compare(profile, pd.DataFrame({"a": cur})) if r.column == "a")
    raw = stats.ks_2samp(ref, cur).statistic
    assert binned.statistic <= raw + 1e-9
    assert binned.statistic == pytest.approx(raw, abs=0.02)
