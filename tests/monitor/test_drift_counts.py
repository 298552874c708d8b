from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopml.monitor import (
    build_profile,
    combine_counts,
    compare,
    compare_counts,
    profile_counts,
    psi,
)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 50, n),  # integer-coded, numeric
            "cat": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "code": rng.choice([1, 2, 3], n),  # integer-coded categories
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(np.random.default_rng(0), 20_000)


def test_counts_of_partitions_combine_to_the_counts_of_the_whole(reference: pd.DataFrame) -> None:
    profile = build_profile(reference, ["x", "k"], ["cat", "code"])
    current = _frame(np.random.default_rng(1), 9_001, shift=0.3)
    whole = profile_counts(current, profile)
    cuts = [0, 17, 4_000, 4_000, 9_001]  # uneven parts, one of them empty
    parts = [profile_counts(current.iloc[a:b], profile) for a, b in itertools.pairwise(cuts)]
    merged = combine_counts(parts)
    assert merged.rows == whole.rows == len(current)
    for column, counts in whole.counts.items():
        assert np.array_equal(merged.counts[column], counts)
        assert counts.sum() == len(current)
    assert [r.__dict__ for r in compare_counts(profile, merged)] == [
        r.__dict__ for r in compare(profile, current)
    ]


def test_categories_match_by_their_text_and_unknown_or_missing_values_have_their_own_bins(
    reference: pd.DataFrame,
) -> None:
    profile = build_profile(reference, [], ["code", "cat"])
    assert set(profile.columns["code"].categories[:3]) == {"1", "2", "3"}
    current = pd.DataFrame({"code": ["1", "1", "3", "7", None], "cat": ["a", "zz", None, np.nan, "d"]})
    counts = profile_counts(current, profile).counts
    code, cat = profile.columns["code"], profile.columns["cat"]
    assert counts["code"][code.categories.index("1")] == 2
    assert counts["code"][code.categories.index("__other__")] == 1
    assert counts["code"][code.categories.index("__missing__")] == 1
    assert counts["cat"][cat.categories.index("__other__")] == 1
    assert counts["cat"][cat.categories.index("__missing__")] == 2


def _evidently_fill(shares: np.ndarray) -> np.ndarray:
    """Evidently 0.7's ``get_binned_data(feel_zeroes=True)`` rule, written out independently."""
    smallest = min(shares[shares != 0])
    out = shares.copy()
    np.place(out, out == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return out


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([0.2, 0.3, 0.5], [0.3, 0.3, 0.4]),
        ([0.5, 0.5, 0.0], [0.4, 0.5, 0.1]),  # a new category
        ([0.99995, 0.00005, 0.0], [0.9, 0.05, 0.05]),  # tiny shares: a millionth of the smallest
        ([0.6, 0.4, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]),  # bins empty on both sides add nothing
    ],
)
def test_psi_uses_evidentlys_rule_for_empty_bins(ref: list[float], cur: list[float]) -> None:
    r, c = np.array(ref), np.array(cur)
    seen = (r > 0) | (c > 0)
    rf, cf = _evidently_fill(r[seen]), _evidently_fill(c[seen])
    assert psi(r, c) == pytest.approx(float(np.sum((rf - cf) * np.log(rf / cf))), abs=1e-15)


def test_categorical_statistics_equal_the_textbook_ones_on_raw_counts(reference: pd.DataFrame) -> None:
    profile = build_profile(reference, [], ["cat"])
    current = pd.DataFrame({"cat": np.random.default_rng(2).choice(list("abcd"), 5_000, p=[0.3] * 3 + [0.1])})
    result = compare(profile, current)[0]
    keys = sorted(set(reference["cat"]))
    ref = reference["cat"].value_counts().reindex(keys).to_numpy(dtype=float)
    cur = current["cat"].value_counts().reindex(keys).to_numpy(dtype=float)
    p_value = stats.chisquare(cur, ref * len(current) / len(reference)).pvalue
    assert result.p_value == pytest.approx(p_value, abs=1e-12)
    natural = jensenshannon(ref / ref.sum(), cur / cur.sum())  # base e, as Evidently reports it
    assert result.js * math.sqrt(math.log(2)) == pytest.approx(natural, abs=1e-12)
    shares_r, shares_c = ref / ref.sum(), cur / cur.sum()
    assert result.psi == pytest.approx(float(np.sum((shares_c - shares_r) * np.log(shares_c / shares_r))))


@pytest.mark.parametrize("bins", [10, 50])  # few edges: comparisons; many: binary search
def test_numeric_bins_are_quantiles_and_hold_values_up_to_their_upper_edge(bins: int) -> None:
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(0, 1, 5_000), 1)  # many ties, some exactly on an edge
    reference = build_profile(pd.DataFrame({"x": values}), ["x"], [], bins=bins)
    edges = np.array(reference.columns["x"].edges)
    assert np.array_equal(edges, np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])))
    current = np.r_[values[:1_000], edges, [np.nan, -np.inf]]
    counts = profile_counts(pd.DataFrame({"x": current}), reference)
    which = [int(np.sum(edges < v)) for v in current[:-2]]  # bin i is (e_{i-1}, e_i]
    expected = np.bincount(which, minlength=len(edges) + 1)
    assert counts.counts["x"].tolist() == [*expected.tolist(), 2]
