"""Entity window features: point-in-time correctness (the leakage test) and offline/online equality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import ConfigError
from loopml.examples.fraud import simulate
from loopml.features import EntityHistory, WindowSpec, event_millis, parse_duration, window_features

MINUTE = 60_000
T0 = pd.Timestamp("2026-03-01")


def reference(frame: pd.DataFrame, spec: WindowSpec, event_time: str = "ts") -> dict[str, np.ndarray]:
    """Window features by brute force: for each event, loop over every event and keep those of the same
    entity with ``t - delay - window <= time < t - delay`` and a known value."""
    times = (frame[event_time] - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    times = times.to_numpy()
    entities = frame[spec.entity].to_list()
    values = np.ones(len(frame)) if spec.column is None else frame[spec.column].to_numpy(dtype=float)
    delay = parse_duration(spec.label_delay) if spec.label_delay else 0
    out = {name: np.empty(len(frame)) for name in spec.names}
    for i in range(len(frame)):
        for window in spec.windows:
            lo, hi = times[i] - delay - parse_duration(window), times[i] - delay
            used = [
                values[j]
                for j in range(len(frame))
                if entities[j] == entities[i] and lo <= times[j] < hi and not np.isnan(values[j])
            ]
            found = {
                "count": float(len(used)),
                "sum": float(sum(used)),
                "mean": float(sum(used)) / len(used) if used else np.nan,
                "max": float(max(used)) if used else np.nan,
            }
            for agg in spec.aggs:
                out[f"{spec.prefix}__{agg}_{window}"][i] = found[agg]
    return out


def assert_matches_reference(frame: pd.DataFrame, specs: list[WindowSpec], id_column: str | None) -> None:
    got = window_features(frame, specs, "ts", id_column)
    assert list(got.index) == list(frame.index)
    assert list(got.columns) == [name for spec in specs for name in spec.names]
    for spec in specs:
        for name, expected in reference(frame, spec).items():
            assert np.array_equal(got[name].to_numpy(), expected, equal_nan=True), (
                name,
                got[name].to_numpy(),
                expected,
            )


def crafted_events() -> pd.DataFrame:
    """Three cards: simultaneous events, events exactly one window apart, an unknown label."""
    rows = [
        # card, minutes after T0, amount, label (NaN: not known yet)
        ("a", 0, 1.0, 0.0),
        ("a", 30, 2.0, 1.0),
        ("a", 60, 4.0, 0.0),
        ("a", 60, 8.0, 1.0),  # same instant as the row above
        ("a", 80, 16.0, np.nan),
        ("b", 60, 32.0, 1.0),  # another card at the same instant as card a
        ("b", 60, 64.0, 0.0),
        ("b", 120, 128.0, 0.0),  # exactly 1h after: the 60-minute events are in its 1h window
        ("b", 1500, 256.0, 1.0),  # more than a day later
        ("c", 80, 512.0, 0.0),
    ]
    frame = pd.DataFrame(rows, columns=["card", "minute", "amount", "label"])
    frame["ts"] = T0 + pd.to_timedelta(frame["minute"], unit="min")
    frame["id"] = [f"tx{i:02d}" for i in range(len(frame))]
    return frame.sample(frac=1.0, random_state=3)  # the frame's order must not matter


AMOUNTS = WindowSpec("card", "amount", ("count", "sum", "mean", "max"), ("1h", "1d"))
LABELS = WindowSpec("card", "label", ("count", "sum", "mean", "max"), ("1h", "1d"), label_delay="30m")
EVENTS = WindowSpec("card", None, ("count",), ("1h",))


def test_crafted_events_by_hand() -> None:
    frame = crafted_events()
    got = window_features(frame, [AMOUNTS, LABELS], "ts", "id").loc[frame.sort_values("id").index]
    by_id = got.set_axis(sorted(frame["id"]))
    # tx02 and tx03 (card a, minute 60): only minutes 0 and 30 are before them, not each other.
    for tx in ("tx02", "tx03"):
        assert by_id.loc[tx, "card__amount__count_1h"] == 2
        assert by_id.loc[tx, "card__amount__sum_1h"] == 3.0
        assert by_id.loc[tx, "card__amount__max_1h"] == 2.0
    # tx04 (minute 80): the 1h window [20, 80) holds minutes 30, 60, 60.
    assert by_id.loc["tx04", "card__amount__sum_1h"] == 2.0 + 4.0 + 8.0
    assert by_id.loc["tx04", "card__amount__mean_1h"] == 14.0 / 3
    # With the 30-minute label delay, tx04 sees [-10, 50) for 1h: minutes 0 and 30 (labels 0 and 1).
    assert by_id.loc["tx04", "card__label__count_1h"] == 2
    assert by_id.loc["tx04", "card__label__mean_1h"] == 0.5
    # tx02 at minute 60 with the delay: [-30, 30) holds minute 0 only; minute 30 is the cut itself.
    assert by_id.loc["tx02", "card__label__count_1h"] == 1
    assert by_id.loc["tx02", "card__label__sum_1h"] == 0.0
    # The first event of a card has nothing before it.
    assert by_id.loc["tx00", "card__amount__count_1d"] == 0
    assert by_id.loc["tx00", "card__amount__sum_1d"] == 0.0
    assert np.isnan(by_id.loc["tx00", "card__amount__mean_1d"]) and np.isnan(
        by_id.loc["tx00", "card__amount__max_1d"]
    )
    # tx07 (card b, minute 120): [60, 120) holds both minute-60 events of card b, none of card a.
    assert by_id.loc["tx07", "card__amount__sum_1h"] == 96.0
    # tx08 (minute 1500): its 1d window [60, 1500) starts exactly at minute 60.
    assert by_id.loc["tx08", "card__amount__count_1d"] == 3
    # tx09 (card c): alone on its card.
    assert by_id.loc["tx09", "card__amount__count_1d"] == 0


@pytest.mark.parametrize("id_column", ["id", None])
def test_crafted_events_match_brute_force(id_column: str | None) -> None:
    assert_matches_reference(crafted_events(), [AMOUNTS, LABELS, EVENTS], id_column)


def test_nothing_at_or_after_an_event_or_inside_the_delay_changes_its_features() -> None:
    """Rewrite (and duplicate) everything an event may not see; its features stay the same."""
    frame = crafted_events().reset_index(drop=True)
    specs = [AMOUNTS, LABELS]
    before = window_features(frame, specs, "ts", "id")
    for i in range(len(frame)):
        for spec in specs:
            cut = frame.loc[i, "ts"] - pd.Timedelta(milliseconds=spec.delay_ms)
            poisoned = frame.copy()
            hidden = poisoned["ts"] >= cut
            column = spec.column or "amount"
            poisoned.loc[hidden & (poisoned.index != i), column] = 1e6
            extra = poisoned[hidden].assign(id=lambda f: f["id"] + "-copy", **{column: 1e6})
            after = window_features(pd.concat([poisoned, extra]), [spec], "ts", "id").iloc[i]
            assert np.array_equal(
                after[spec.names].to_numpy(), before.loc[i, spec.names].to_numpy(), equal_nan=True
            )


events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 180),  # minutes: many events share an instant
        st.one_of(st.integers(0, 50).map(float), st.just(np.nan)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows=events, delay=st.sampled_from([None, "15m", "1h"]), with_ids=st.booleans())
def test_window_features_equal_brute_force(
    rows: list[tuple[str, int, float]], delay: str | None, with_ids: bool
) -> None:
    frame = pd.DataFrame(rows, columns=["card", "minute", "amount"])
    frame["ts"] = T0 + pd.to_timedelta(frame["minute"], unit="min")
    frame["id"] = np.arange(len(frame))[::-1]
    specs = [
        WindowSpec("card", "amount", ("count", "sum", "mean", "max"), ("30m", "1h", "2h"), label_delay=delay),
        WindowSpec("card", None, ("count", "sum"), ("1h",)),
    ]
    assert_matches_reference(frame, specs, "id" if with_ids else None)


# --- offline / online --------------------------------------------------------------------------

FRAUD_SPECS = [
    WindowSpec("customer_id", "tx_amount", ("count", "sum", "mean", "max"), ("1d", "7d", "30d")),
    WindowSpec("terminal_id", "tx_fraud", ("count", "sum", "mean", "max"), ("1d", "7d", "30d"), "7d"),
]


@pytest.fixture(scope="module")
def fraud() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulated transactions and their training-time window features."""
    frame = simulate(days=40)
    return frame, window_features(frame, FRAUD_SPECS, "tx_datetime", "transaction_id")


def test_serving_features_equal_training_features(fraud: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, training = fraud
    # Fill the history in another order and in chunks, as a server does: start-up, then requests.
    history = EntityHistory(FRAUD_SPECS, "tx_datetime", "transaction_id")
    shuffled = frame.sample(frac=1.0, random_state=0)
    for start in range(0, len(shuffled), 25_000):
        history.extend(shuffled.iloc[start : start + 25_000])
    rng = np.random.default_rng(7)
    picked = rng.choice(len(frame), size=1000, replace=False)
    request_columns = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]  # no label
    requests = frame.iloc[picked][request_columns]
    expected = training.iloc[picked].to_numpy()
    assert np.nanmax(expected[:, 0]) > 1 and np.nanmax(expected[:, -1]) > 0  # not all empty windows
    for k, record in enumerate(requests.to_dict("records")):
        served = history.features(requests.iloc[k : k + 1]).to_numpy()[0]
        assert np.array_equal(served, expected[k], equal_nan=True), requests.iloc[k]
        # The light per-request path (what the API uses for a few records) gives the same values.
        light = history.feature_rows(
            event_millis([record["tx_datetime"].to_pydatetime()]),
            {"customer_id": [record["customer_id"]], "terminal_id": [record["terminal_id"]]},
        )
        values = np.array([light[name][0] for name in history.names])
        assert np.array_equal(values, expected[k], equal_nan=True), requests.iloc[k]


def test_training_features_do_not_depend_on_row_order(fraud: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, _ = fraud
    part = frame.iloc[:2000]
    shuffled = part.sample(frac=1.0, random_state=1)
    again = window_features(shuffled, FRAUD_SPECS, "tx_datetime", "transaction_id").loc[part.index]
    assert np.array_equal(
        again.to_numpy(),
        window_features(part, FRAUD_SPECS, "tx_datetime", "transaction_id").to_numpy(),
        equal_nan=True,
    )


def test_events_already_seen_are_not_added_twice(fraud: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, _ = fraud
    part = frame.iloc[:3000]
    history = EntityHistory(FRAUD_SPECS, "tx_datetime", "transaction_id")
    assert history.extend(part) == len(part)
    queries = frame.iloc[3000:3500]
    before = history.features(queries)
    assert history.extend(part.iloc[:500]) == 0
    assert history.extend(pd.concat([part.iloc[:10], part.iloc[:10]])) == 0
    first = part.iloc[0]
    times = event_millis([first["tx_datetime"].to_pydatetime()])
    assert history.extend_rows(times, [first.to_dict()]) == 0
    assert np.array_equal(history.features(queries).to_numpy(), before.to_numpy(), equal_nan=True)
    # A new id repeated within one batch is added once.
    new = frame.iloc[[3000, 3000]]
    assert history.extend(new) == 1


def test_unknown_entities_get_empty_windows(fraud: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, _ = fraud
    history = EntityHistory(FRAUD_SPECS, "tx_datetime", "transaction_id")
    history.extend(frame.iloc[:2000])
    row = frame.iloc[[2000]].assign(customer_id=-1, terminal_id=-1)
    got = history.features(row).iloc[0]
    for name, value in got.items():
        agg = name.rsplit("__", 1)[1]
        if agg.startswith(("count", "sum")):
            assert value == 0, name
        else:
            assert np.isnan(value), name
    light = history.feature_rows(
        event_millis([row["tx_datetime"].iloc[0].to_pydatetime()]), {"customer_id": [-1], "terminal_id": [-1]}
    )
    assert np.array_equal(np.array([light[n][0] for n in history.names]), got.to_numpy(), equal_nan=True)


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("30m", 30 * MINUTE),
        ("1h", 60 * MINUTE),
        (" 7d ", 7 * 86_400_000),
        ("2w", 14 * 86_400_000),
        ("45s", 45_000),
    ],
)
def test_parse_duration(text: str, millis: int) -> None:
    assert parse_duration(text) == millis


@pytest.mark.parametrize("text", ["", "h", "1y", "1.5h", "-1d", "10", "1 day", "1h30m"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    assert f"'{text}'" in str(info.value) and "30m" in str(info.value)


def test_window_names() -> None:
    assert LABELS.names[:2] == ["card__label__count_1h", "card__label__sum_1h"]
    assert EVENTS.names == ["card__events__count_1h"]
    assert LABELS.delay_ms == 30 * MINUTE and AMOUNTS.delay_ms == 0
