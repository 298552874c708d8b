"""The Redis online state (``RedisState``) against the offline window features and the embedded state.

Several ``RedisState`` objects on one namespace stand for API replicas sharing one Redis: whatever
replica a request goes to, in whatever order late labels come back, each event's window features are
the offline point-in-time ones, bit for bit; a retried request counts once; concurrent replicas lose
and double nothing; each entity keeps only its horizon. Needs ``LOOPML_TEST_REDIS_URL`` (its own DB
number, 11, so that other tests' keys are never touched).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from loopml.errors import OnlineStateError
from loopml.examples.fraud import simulate
from loopml.features import EntityHistory, WindowSpec, window_features
from loopml.features.online import EmbeddedState, OnlineState, horizon_ms
from loopml.features.online_redis import RedisState, shown_url, sortable_number

redis = pytest.importorskip("redis")

REDIS_ENV = "LOOPML_TEST_REDIS_URL"
RISK = WindowSpec("terminal_id", "tx_fraud", ("count", "mean"), ("1d", "7d"), label_delay="2d")
SPEND = WindowSpec("customer_id", "tx_amount", ("count", "sum", "mean", "max"), ("1h", "1d"))
SPECS = [RISK, SPEND]
COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]


def own_db(url: str, db: int = 11) -> str:
    """The test Redis URL on database ``db`` (this module's own)."""
    base, _, last = url.rstrip("/").rpartition("/")
    return f"{base}/{db}" if last.isdigit() else f"{url.rstrip('/')}/{db}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set; the Redis online state tests skipped")
    yield own_db(url)


@pytest.fixture
def model_name(redis_url: str) -> Iterator[str]:
    """A model name of this test's own (its keys are deleted afterwards)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"loopml:online:{name}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    frame = simulate(days=20, n_customers=40, n_terminals=30, seed=11)[COLUMNS]
    return frame.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)


def replica(url: str, name: str, specs: list[WindowSpec] = SPECS) -> RedisState:
    return RedisState(url, name, specs, "tx_datetime", "transaction_id")


def warmed(url: str, name: str, snapshot: pd.DataFrame) -> RedisState:
    state = replica(url, name)
    state.warm("v1", lambda: iter([("learn", state.events_of(snapshot))]))
    return state


def embedded(snapshot: pd.DataFrame) -> EmbeddedState:
    state = EmbeddedState(EntityHistory(SPECS, "tx_datetime", "transaction_id", horizon_ms=horizon_ms(SPECS)))
    state.learn(state.events_of(snapshot))
    return state


def serve(state: OnlineState, rows: pd.DataFrame) -> np.ndarray:
    """Score ``rows`` as the API does (labels not sent): their features, the rows added first."""
    found = state.features(state.events_of(rows.drop(columns="tx_fraud")), observe=True)
    return np.column_stack([found[n] for n in state.names])


def test_replicas_sharing_redis_serve_the_offline_features(
    events: pd.DataFrame, redis_url: str, model_name: str
) -> None:
    cut = len(events) // 2
    snapshot, live = events.iloc[:cut], events.iloc[cut:].reset_index(drop=True)
    offline = window_features(events, SPECS, "tx_datetime", "transaction_id").iloc[cut:].to_numpy()
    warmed(redis_url, model_name, snapshot)
    replicas = [replica(redis_url, model_name) for _ in range(3)]
    alone = embedded(snapshot)
    rng = np.random.default_rng(3)
    shared, single, start, labelled = [], [], 0, 0
    while start < len(live):
        size = int(rng.choice([1, 1, 1, 2, 5, 40]))  # mostly one record; sometimes more than 32
        rows = live.iloc[start : start + size]
        shared.append(serve(replicas[int(rng.integers(3))], rows))
        single.append(serve(alone, rows))
        start += size
        if start - labelled > 60:  # labels come back, in any order, to any replica
            back = live.iloc[labelled:start].sample(frac=1.0, random_state=start)
            replicas[int(rng.integers(3))].learn(replicas[0].events_of(back))
            alone.learn(alone.events_of(back))
            labelled = start
    got, expected = np.vstack(shared), np.vstack(single)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(got, offline, equal_nan=True)
    assert (got[:, replicas[0].names.index("terminal_id__tx_fraud__count_7d")] > 0).mean() > 0.5


def test_a_retried_request_counts_once(events: pd.DataFrame, redis_url: str, model_name: str) -> None:
    state = warmed(redis_url, model_name, events.iloc[:100])
    rows = events.iloc[100:103].drop(columns="tx_fraud")
    assert state.observe(state.events_of(rows)) == 3
    assert replica(redis_url, model_name).observe(state.events_of(rows)) == 0  # the retry, elsewhere
    later = events.iloc[[103]]
    once = serve(state, later)
    twice_state = embedded(events.iloc[:100])
    twice_state.observe(twice_state.events_of(rows))
    assert np.array_equal(once, serve(twice_state, later), equal_nan=True)


def test_concurrent_replicas_lose_and_double_nothing(
    events: pd.DataFrame, redis_url: str, model_name: str
) -> None:
    warmed(redis_url, model_name, events.iloc[:50])
    live = events.iloc[50:650].drop(columns="tx_fraud")
    errors: list[BaseException] = []

    def send(part: pd.DataFrame) -> None:
        state = replica(redis_url, model_name)
        try:
            for i in range(0, len(part), 3):
                state.observe(state.events_of(part.iloc[i : i + 3]))
        except BaseException as exc:
            errors.append(exc)

    # four replicas at once; two of them send the same events (retries crossing each other)
    parts = [live.iloc[0:300], live.iloc[300:600], live.iloc[150:450], live.iloc[::2]]
    threads = [threading.Thread(target=send, args=(p,)) for p in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    client = redis.Redis.from_url(redis_url)
    namespace = replica(redis_url, model_name).namespace
    members = sum(client.zcard(k) for k in client.scan_iter(f"{namespace}:2:z:*"))
    assert members == 650  # every event once, customers' windows (no event lost, none doubled)
    client.close()
    probe = events.iloc[650:660]
    single = embedded(events.iloc[:50])
    single.observe(single.events_of(live))
    assert np.array_equal(serve(replica(redis_url, model_name), probe), serve(single, probe), equal_nan=True)


def test_each_entity_keeps_only_its_horizon(redis_url: str, model_name: str) -> None:
    spec = WindowSpec("card", "amount", ("count",), ("1h",))
    state = RedisState(redis_url, model_name, [spec], "ts", "id")
    start = pd.Timestamp("2026-01-01")
    frame = pd.DataFrame(
        {
            "ts": [start + pd.Timedelta(minutes=10 * i) for i in range(200)],  # 33 hours of one card
            "id": range(200),
            "card": 7,
            "amount": 1.0,
        }
    )
    state.warm("v1", lambda: iter([("observe", state.events_of(frame))]))
    client = redis.Redis.from_url(redis_url)
    zset = f"{state.namespace}:1:z:7"
    assert client.zcard(zset) == 13  # the newest event and the 2 h (twice the window) before it
    assert client.hlen(f"{state.namespace}:1:v:7") == 13
    assert 0 < client.pttl(zset) <= horizon_ms([spec])  # an idle entity expires
    client.close()


def test_an_unreachable_redis_is_a_clear_error_at_once() -> None:
    state = RedisState("redis://:secret@127.0.0.1:1/0", "m", SPECS, "tx_datetime", "transaction_id")
    with pytest.raises(OnlineStateError, match=r"cannot be reached") as caught:
        state.check()
    assert "secret" not in str(caught.value) and "***" in str(caught.value)
    started = time.monotonic()
    with pytest.raises(OnlineStateError):  # the next calls fail at once, not after a socket timeout
        state.check()
    assert time.monotonic() - started < 0.1
    assert shown_url("redis://u:pw@h:6379/2") == "redis://u:***@h:6379/2"


def test_a_cold_state_refuses_to_serve(redis_url: str, model_name: str) -> None:
    state = replica(redis_url, model_name)
    with pytest.raises(OnlineStateError, match="empty"):
        state.check()
    with pytest.raises(OnlineStateError, match="empty"):
        state.features(state.events_of(pd.DataFrame(columns=COLUMNS).astype({"tx_datetime": "M8[ns]"})))


@pytest.mark.parametrize("numbers", [[-3.5, -1, 0, 0.25, 1, 2, 10, 1e12], [5, 40, 300, 2_000_000_000]])
def test_ids_sort_in_redis_as_numbers(numbers: list[float]) -> None:
    assert sorted(sortable_number(n) for n in numbers) == [sortable_number(n) for n in sorted(numbers)]
