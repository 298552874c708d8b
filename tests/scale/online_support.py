"""The fraud example served by several real ``loopml serve`` replicas, for the online-state tests.

A module with a unique name (imported by the tests of this folder): the project (trained once on
days 0-17, days 18-23 to replay), replicas started and killed on ports of their own, a client that
sends events round-robin with ``?features=true`` and posts their labels, and the offline truth: the
point-in-time window features training computes for the same events.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml
from scale_procs import Process, start, stop, wait_ready
from sqlalchemy.engine import make_url

from loopml.examples import write_example
from loopml.examples._demo import jsonable_records
from loopml.features import window_features
from loopml.project import Project
from loopml.serve import free_port
from loopml.store import tables
from loopml.validate import load_snapshot

PREDICT = "/v1/models/fraud/predict?features=true"
LABEL_EVERY = 100  # events between two feedback posts (their labels, at once: the shortest delay)


def build_project(directory: Path, db_url: str) -> Project:
    """The fraud example on ``db_url``, trained on days 0-17 (``data/replay.parquet`` holds days 18-23).

    The terminal's fraud-rate windows get a 1-day label delay, so that labels sent as feedback
    during a replay reach the windows of later replayed events (the real 7 days would need a week)."""
    write_example("fraud", directory, days=24, regime_change_day=19)
    path = directory / "loopml.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["store"] = {"db_url": db_url}
    config.pop("actions", None)
    config.setdefault("train", {}).update(params={"n_estimators": 20}, bootstrap=0, report=False)
    for window in config["features"]["windows"]:
        if window.get("label_delay"):
            window["label_delay"] = "1d"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    assert project.train().promoted
    return project


def replay_events(project: Project, count: int) -> pd.DataFrame:
    """The first ``count`` replayed transactions, in event-time order."""
    frame = pd.read_parquet(project.directory / "data" / "replay.parquet")
    return frame.sort_values(["tx_datetime", "transaction_id"]).head(count).reset_index(drop=True)


def offline_features(project: Project, events: pd.DataFrame) -> pd.DataFrame:
    """What training computes for ``events``: their point-in-time window features over the snapshot
    and every replayed event, every label known."""
    model = project.models.load(history=False)
    _, snapshot = load_snapshot(project.store, project.name)
    history = pd.concat([snapshot, events], ignore_index=True)
    found = window_features(history, model.windows, "tx_datetime", "transaction_id")
    return found.iloc[len(snapshot) :][model.window_names].reset_index(drop=True)


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """``base`` (a PostgreSQL URL) confined to a new schema, dropped afterwards."""
    url = make_url(base)
    admin = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    schema = f"t_{uuid.uuid4().hex}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        given = url.query.get("options")
        options = " ".join(
            filter(None, [given if isinstance(given, str) else None, f"-csearch_path={schema}"])
        )
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def own_db(url: str, db: int = 12) -> str:
    """The test Redis URL on database ``db``: these tests' own, so that no other test's keys are touched."""
    base, _, last = url.rstrip("/").rpartition("/")
    return f"{base}/{db}" if last.isdigit() else f"{url.rstrip('/')}/{db}"


def reset(project: Project, redis_url: str | None) -> None:
    """Forget every prediction and label (and the online state): the next replay starts from the snapshot."""
    with project.store.engine.begin() as conn:
        for table in (tables.feedback, tables.action_deliveries, tables.action_outbox, tables.predictions):
            conn.execute(table.delete())
    if redis_url is not None:
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter("loopml:online:fraud:*", count=10_000):
            client.delete(key)
        client.close()


@dataclass
class Replica:
    """One ``loopml serve`` on a port of its own (kept across a restart)."""

    directory: Path
    log: Path
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        args = ["serve", "--project", str(self.directory), "--port", str(self.port)]
        self.process = start(args, self.log, self.env)
        return self

    def ready(self) -> Replica:
        assert self.process is not None
        wait_ready(self.process, self.url, self.log)
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)


def start_replicas(project: Project, count: int, tmp: Path, env: Mapping[str, str]) -> list[Replica]:
    tmp.mkdir(parents=True, exist_ok=True)
    replicas = [Replica(project.directory, tmp / f"api-{i}.log", env).start() for i in range(count)]
    for replica in replicas:
        replica.ready()
    return replicas


def stop_replicas(replicas: Iterable[Replica]) -> None:
    stop(r.process for r in replicas if r.process is not None)


def records_of(project: Project, events: pd.DataFrame) -> list[dict[str, Any]]:
    model = project.models.load(history=False)
    return jsonable_records(events, ["transaction_id", *model.input_columns])


@dataclass
class Served:
    """What the replicas answered: each event's window features (NaN for null), prediction id, replica."""

    features: np.ndarray
    prediction_ids: list[str]
    replica: list[int]


def send_round_robin(
    urls: list[str],
    records: list[dict[str, Any]],
    labels: list[int],
    names: list[str],
    *,
    retry: bool = False,
    before: Callable[[int], None] | None = None,
) -> Served:
    """Each event to the next replica in turn, one at a time; its label posted (to the next replica
    again) once every :data:`LABEL_EVERY` events. With ``retry`` a request that fails (a replica
    down) goes to the next replica, as a client behind a load balancer retries. ``before(i)`` runs
    before event ``i`` is sent (to kill or restart a replica mid-load)."""
    features = np.full((len(records), len(names)), np.nan)
    ids: list[str] = [""] * len(records)
    served_by: list[int] = [-1] * len(records)
    pending: list[dict[str, Any]] = []
    turn = 0
    with httpx.Client(timeout=30) as client:
        for i, record in enumerate(records):
            if before is not None:
                before(i)
            answer, turn = _predict(client, urls, turn, record, retry)
            served_by[i] = (turn - 1) % len(urls)
            prediction = answer["predictions"][0]
            ids[i] = prediction["prediction_id"]
            window = prediction["window_features"]
            features[i] = [np.nan if window[n] is None else window[n] for n in names]
            pending.append({"prediction_id": ids[i], "label": labels[i]})
            if len(pending) >= LABEL_EVERY or i == len(records) - 1:
                turn = _post_labels(client, urls, turn, pending, retry)
                pending = []
    return Served(features, ids, served_by)


def _predict(
    client: httpx.Client, urls: list[str], turn: int, record: dict[str, Any], retry: bool
) -> tuple[dict[str, Any], int]:
    for _ in range(len(urls) * 20 if retry else 1):
        url = urls[turn % len(urls)]
        turn += 1
        try:
            response = client.post(f"{url}{PREDICT}", json=[record])
        except httpx.TransportError:
            if not retry:
                raise
            time.sleep(0.01)
            continue
        assert response.status_code == 200, response.text
        return response.json(), turn
    raise AssertionError("no replica answered")


def _post_labels(
    client: httpx.Client, urls: list[str], turn: int, labels: list[dict[str, Any]], retry: bool
) -> int:
    for _ in range(len(urls) * 20 if retry else 1):
        url = urls[turn % len(urls)]
        turn += 1
        try:
            response = client.post(f"{url}/v1/feedback", json=labels)
        except httpx.TransportError:
            if not retry:
                raise
            continue
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(labels), response.json()
        return turn
    raise AssertionError("no replica took the labels")


def mismatches(got: np.ndarray, expected: np.ndarray) -> int:
    """Events whose window features differ anywhere (NaN equals NaN), compared bit for bit."""
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    return int((~same).any(axis=1).sum())
