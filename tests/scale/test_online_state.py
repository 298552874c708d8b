"""Scale-out that stays correct: three real ``loopml serve`` replicas on one PostgreSQL store share one
online window state in Redis, and serve, for every event, the window features one replica serves
alone and that training computes offline for it; with the embedded state they do not.

Events go round-robin, one request at a time, each with ``?features=true`` (the window features the
prediction used), and their labels follow as feedback (posted round-robin too), so that the
terminals' fraud-rate windows (label delay 1 day here) take the late labels as training does. A
third test kills one replica with ``kill -9`` mid-load and starts it again. Redis on database 12 of
``LOOPML_TEST_REDIS_URL`` (these tests' own); skipped with a reason without it or PostgreSQL. About
4 minutes on a busy 2-core machine; the full 10,000 events took 8.6 minutes more.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
from online_support import (
    Replica,
    Served,
    build_project,
    mismatches,
    offline_features,
    own_db,
    postgres_schema,
    records_of,
    replay_events,
    reset,
    send_round_robin,
    start_replicas,
    stop_replicas,
)
from prometheus_client.parser import text_string_to_metric_families

from loopml.features.online_redis import sortable_number
from loopml.project import Project
from loopml.store import known_predictions

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REDIS_ENV, POSTGRES_ENV = "LOOPML_TEST_REDIS_URL", "LOOPML_TEST_POSTGRES_URL"
# The full run is 10,000 events (LOOPML_TEST_ONLINE_EVENTS=10000); the suite's default keeps its
# share of the suite's time small. Every window feature of every event is compared three ways.
EVENTS = int(os.environ.get("LOOPML_TEST_ONLINE_EVENTS", "1000"))
EMBEDDED_EVENTS = 600  # enough for three replicas with the embedded state to disagree


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set; the shared online state (Redis) tests skipped")
    return own_db(url)


@pytest.fixture(scope="module")
def module_postgres_url() -> Iterator[str]:
    """A PostgreSQL schema of this module's own (the project is trained once for its three tests)."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests skipped")
    with postgres_schema(base) as url:
        yield url


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, module_postgres_url: str, redis_url: str
) -> Iterator[Project]:
    built = build_project(tmp_path_factory.mktemp("online") / "proj", module_postgres_url)
    yield built
    reset(built, redis_url)
    built.store.engine.dispose()


def _replay(
    project: Project, tmp: Path, replicas: int, env: dict[str, str], events: int
) -> tuple[pd.DataFrame, Served]:
    frame = replay_events(project, events)
    names = project.models.load(history=False).window_names
    started = start_replicas(project, replicas, tmp, env)
    try:
        served = send_round_robin(
            [r.url for r in started], records_of(project, frame), frame["tx_fraud"].tolist(), names
        )
        counted = predictions_counted([r.url for r in started])
    finally:
        stop_replicas(started)
    if env:  # scaled out: each replica's samples carry its own replica label, and they add up
        assert len(counted) == replicas and sum(counted.values()) == events, counted
    return frame, served


def predictions_counted(urls: list[str]) -> dict[str, float]:
    """``loopml_predictions_total`` of each replica's /metrics, by its ``replica`` label (read with
    prometheus_client's own parser)."""
    counted: dict[str, float] = {}
    for url in urls:
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
            for sample in family.samples:
                if sample.name == "loopml_predictions_total" and "replica" in sample.labels:
                    label = sample.labels["replica"]
                    counted[label] = counted.get(label, 0.0) + sample.value
    return counted


def test_three_replicas_on_redis_serve_the_offline_features(
    project: Project, redis_url: str, tmp_path: Path
) -> None:
    frame = replay_events(project, EVENTS)
    offline = offline_features(project, frame).to_numpy()

    reset(project, redis_url)
    _, alone = _replay(project, tmp_path / "one", 1, {}, EVENTS)
    reset(project, redis_url)
    _, shared = _replay(project, tmp_path / "three", 3, {"LOOPML_ONLINE_URL": redis_url}, EVENTS)

    assert set(shared.replica) == {0, 1, 2}
    assert mismatches(alone.features, offline) == 0
    assert mismatches(shared.features, alone.features) == 0
    assert mismatches(shared.features, offline) == 0
    # the label windows did take labels sent during the replay (not only the snapshot's)
    names = project.models.load(history=False).window_names
    rate = [i for i, name in enumerate(names) if "tx_fraud__count" in name]
    assert (shared.features[-1000:, rate] > 0).any()
    # every acknowledged prediction is in the log, once (ids are the log's primary key)
    assert len(known_predictions(project.store.engine, shared.prediction_ids)) == EVENTS
    client = redis.Redis.from_url(redis_url)
    assert any(client.scan_iter("loopml:online:fraud:*:warm"))
    client.close()


def test_three_replicas_with_the_embedded_state_disagree(
    project: Project, redis_url: str, tmp_path: Path
) -> None:
    """The same replay without the shared state: each replica scores a third of the events and
    learns the others' only when their labels come back, so the features differ from the offline
    ones (the checks above can fail)."""
    reset(project, redis_url)
    frame, split = _replay(project, tmp_path / "split", 3, {}, EMBEDDED_EVENTS)
    offline = offline_features(project, frame).to_numpy()
    wrong = mismatches(split.features, offline)
    print(f"three embedded replicas: {wrong} of {len(frame)} events served other window features")
    assert wrong > 20


KILL_EVENTS = 600  # a replica killed a third of the way in, started again at two thirds


def _members(redis_url: str) -> set[bytes]:
    """Every event id in the shared state's first window group (the cards')."""
    client = redis.Redis.from_url(redis_url)
    try:
        found: set[bytes] = set()
        for key in client.scan_iter("loopml:online:fraud:*:1:z:*", count=10_000):
            found.update(m for m in client.zrange(key, 0, -1) if isinstance(m, bytes))
        return found
    finally:
        client.close()


def test_a_replica_killed_mid_load_loses_nothing_and_restarts_right(
    project: Project, redis_url: str, tmp_path: Path
) -> None:
    """``kill -9`` of one of three replicas while events flow (requests to it retried on the others),
    then a restart: every acknowledged event is in the shared state and in the prediction log, and
    the restarted replica serves the offline features from its first request."""
    reset(project, redis_url)
    frame = replay_events(project, KILL_EVENTS)
    offline = offline_features(project, frame).to_numpy()
    names = project.models.load(history=False).window_names
    started = start_replicas(project, 3, tmp_path / "kill", {"LOOPML_ONLINE_URL": redis_url})
    victim: Replica = started[1]
    killer = threading.Timer(0.05, victim.kill)  # fires while the next requests are in flight
    dead_from: list[int] = []  # the first event sent after the victim had died (kill() waits for it)

    def chaos(i: int) -> None:
        if i == KILL_EVENTS // 3:
            killer.start()
        elif i > KILL_EVENTS // 3 and not dead_from and not killer.is_alive():
            dead_from.append(i)
        if i == 2 * KILL_EVENTS // 3:
            killer.join()
            victim.start().ready()

    try:
        served = send_round_robin(
            [r.url for r in started],
            records_of(project, frame),
            frame["tx_fraud"].tolist(),
            names,
            retry=True,
            before=chaos,
        )
    finally:
        stop_replicas(started)  # the restarted replica replayed the killed one's journal on start
    after = [i for i, r in enumerate(served.replica) if r == 1 and i >= 2 * KILL_EVENTS // 3]
    assert after, "the restarted replica served nothing"
    assert mismatches(served.features[after[:1]], offline[after[:1]]) == 0  # right from its first
    assert mismatches(served.features, offline) == 0
    assert len(known_predictions(project.store.engine, served.prediction_ids)) == KILL_EVENTS
    state = _members(redis_url)
    missing = [i for i in frame["transaction_id"].tolist() if sortable_number(i).encode() not in state]
    assert missing == []
    assert dead_from and dead_from[0] < 2 * KILL_EVENTS // 3 - 20, dead_from  # killed mid-load
    down = range(dead_from[0], 2 * KILL_EVENTS // 3)
    assert not any(served.replica[i] == 1 for i in down)  # it was down meanwhile: the others served
