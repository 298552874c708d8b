"""Labels that come back after their events were scored reach the window history (EntityHistory.learn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.examples.fraud import simulate
from loopml.features import EntityHistory, WindowSpec, window_features

RISK = WindowSpec("terminal_id", "tx_fraud", ("count", "mean"), ("1d", "7d"), label_delay="7d")
SPEND = WindowSpec("customer_id", "tx_amount", ("count", "max"), ("1d",))
COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return simulate(days=30, n_customers=60, n_terminals=80, seed=5)[COLUMNS]


def test_late_labels_give_the_features_of_a_history_that_always_had_them(events: pd.DataFrame) -> None:
    specs = [RISK, SPEND]
    labelled = window_features(events, specs, "tx_datetime", "transaction_id")
    history = EntityHistory(specs, "tx_datetime", "transaction_id")
    history.extend(events.drop(columns="tx_fraud"))  # scored: the labels are not known yet
    stale = history.features(events)
    assert (stale["terminal_id__tx_fraud__count_7d"] == 0).all()  # no label: the window sees nothing
    old = events[events["tx_datetime"] < events["tx_datetime"].min() + pd.Timedelta(days=20)]
    changed = history.learn(old.sample(frac=1.0, random_state=0))  # the first 20 days come back, any order
    assert changed == len(old)
    learnt = history.features(events)
    # Rows whose label windows end (7 days before them) by the last label that came back.
    before = (events["tx_datetime"] - pd.Timedelta(days=7) <= old["tx_datetime"].max()).to_numpy()
    assert 0 < before.sum() < len(events)
    for name in labelled.columns:
        got, expected = learnt[name].to_numpy(), labelled[name].to_numpy()
        if name.startswith("customer_id"):  # no label in it: untouched
            assert np.array_equal(got, expected, equal_nan=True), name
        else:  # every label a query can reach is back for the rows whose windows end before day 20
            assert np.array_equal(got[before], expected[before], equal_nan=True), name
            assert not np.array_equal(got, expected, equal_nan=True), name  # later ones still wait
    assert history.learn(old) == 0  # the same labels again change nothing


def test_learning_adds_unknown_events_and_skips_unknown_values(events: pd.DataFrame) -> None:
    history = EntityHistory([RISK], "tx_datetime", "transaction_id")
    first, rest = events.iloc[:100], events.iloc[100:]
    history.extend(first.drop(columns="tx_fraud"))
    unknown = rest.assign(tx_fraud=np.nan)
    assert history.learn(unknown) == 0  # added, with nothing learnt
    assert history.learn(events) == len(events)  # now every label arrives
    pd.testing.assert_frame_equal(
        history.features(events), window_features(events, [RISK], "tx_datetime", "transaction_id")
    )
    with pytest.raises(ValueError, match="id column"):
        EntityHistory([RISK], "tx_datetime").learn(events)


def test_a_corrected_label_wins_for_known_and_unknown_events(events: pd.DataFrame) -> None:
    """Feedback may label an event twice (a correction): the last label counts, whether or not the
    event was scored here first."""
    rows = events.iloc[:50]
    corrected = pd.concat([rows.assign(tx_fraud=0), rows.assign(tx_fraud=1)])  # oldest first
    expected = window_features(rows.assign(tx_fraud=1), [RISK], "tx_datetime", "transaction_id")
    unseen = EntityHistory([RISK], "tx_datetime", "transaction_id")
    unseen.learn(corrected)
    seen = EntityHistory([RISK], "tx_datetime", "transaction_id")
    seen.extend(rows.drop(columns="tx_fraud"))
    seen.learn(corrected)
    for history in (unseen, seen):
        pd.testing.assert_frame_equal(history.features(rows), expected)
