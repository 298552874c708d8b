from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopml.monitor import Profile, build_profile, concept_drift


def _scored(rng: np.random.Generator, n: int, *, missed: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of a model that ranks positives high; ``missed`` of the positives get
    scores like the negatives' (a new kind of positive the model has not learned)."""
    y = (rng.random(n) < 0.02).astype(float)
    score = np.where(y == 1, rng.beta(5, 2, n), rng.beta(1, 30, n))
    lost = (y == 1) & (rng.random(n) < missed)
    score[lost] = rng.beta(1, 30, int(lost.sum()))
    return score, y


@pytest.fixture(scope="module")
def profile() -> Profile:
    score, y = _scored(np.random.default_rng(0), 20_000)
    return build_profile(pd.DataFrame({"prediction": score}), ["prediction"], [], positives=y == 1)


def test_the_profile_keeps_the_positives_per_bin_through_json(profile: Profile) -> None:
    column = profile.columns["prediction"]
    assert len(column.positives) == len(column.shares)
    assert column.positives[-1] == 0  # no missing score
    assert sum(column.positives) == pytest.approx(0.02 * 20_000, rel=0.1)
    assert Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_positives_that_now_score_low_are_concept_drift(profile: Profile) -> None:
    score, y = _scored(np.random.default_rng(1), 3_000, missed=0.5)
    found = concept_drift(profile, score, y)
    assert found is not None and found.drifted and found.p_value < 1e-6
    lost, *gained = found.top_bins
    assert lost["bin"].endswith("inf]") and lost["current"] < lost["reference"]  # the top bin lost them
    assert all(b["current"] > b["reference"] for b in gained)  # to the low bins


def test_the_same_relation_is_not_concept_drift(profile: Profile) -> None:
    flagged = []
    for seed in range(2, 12):
        score, y = _scored(np.random.default_rng(seed), 3_000)
        found = concept_drift(profile, score, y)
        assert found is not None
        flagged.append(found.drifted)
    assert sum(flagged) <= 1  # the test's level is 5%


def test_no_verdict_without_enough_positives_or_a_reference(profile: Profile) -> None:
    score, y = _scored(np.random.default_rng(3), 3_000, missed=0.9)
    assert concept_drift(profile, score[:100], np.zeros(100)) is None
    assert concept_drift(profile, score, y, min_positives=10_000) is None
    unlabelled = build_profile(pd.DataFrame({"prediction": score}), ["prediction"], [])
    assert concept_drift(unlabelled, score, y) is None
