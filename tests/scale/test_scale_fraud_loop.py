"""The whole fraud loop on one PostgreSQL store with two API processes and two workers.

Real processes only: two ``loopml serve`` and two ``loopml worker`` subprocesses, a real case
receiver (Standard Webhooks, de-duplicating by ``webhook-id``), traffic over HTTP to both APIs and
labels sent back through ``POST /v1/feedback``. The labels fire the retraining policy
(``retrain.new_labels``) in whichever worker gets the cycle lease; its promotion must reach both
APIs within 2 seconds, every action must reach the receiver exactly once although both workers
dispatch the same outbox, and no two cycles may overlap.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from scale_procs import start, start_api, stop, wait_ready
from sqlalchemy import Engine, func, select

from loopml.examples import write_example
from loopml.examples._demo import jsonable_records
from loopml.examples.fraud.receiver import CaseReceiver, new_secret
from loopml.project import Project
from loopml.registry import alias_history
from loopml.retrain import list_events
from loopml.retrain.cycle import ACTOR
from loopml.store import tables
from loopml.validate import load_snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PREDICT = "/v1/models/fraud/predict"
SECRET_ENV = "LOOPML_TEST_CASES_SECRET"  # LOOPML_TEST_*: passed on to the processes
BATCH = 10  # records per request
NEW_LABELS = 400  # labels that fire a retraining cycle
BUSY = "another worker is running a cycle"


@dataclass(frozen=True)
class Call:
    """One predict request: which API, when it was sent and answered (epoch s), what served it."""

    api: int
    sent: float
    answered: float
    status: int
    version: int | None


def _project(directory: Path, postgres_url: str) -> Project:
    """A fraud project whose cycle takes about a second: little data, ten trees, no windows."""
    write_example(
        "fraud",
        directory,
        days=50,
        n_customers=150,
        n_terminals=300,
        terminal_compromise_rate=3.0,
        regime_change_day=None,
    )
    config = yaml.safe_load((directory / "loopml.yaml").read_text(encoding="utf-8"))
    config["store"] = {"db_url": postgres_url}
    config["features"].pop("windows")
    config["source"]["watermark"] = "tx_datetime"  # a cycle's ingest finds nothing new: fast
    config["train"].update(bootstrap=0, report=False, params={"n_estimators": 10, "n_jobs": 1, "verbose": -1})
    config["monitor"] = {"window": "1d"}  # no floors: the watch never rolls a promotion back
    config["retrain"] = {"refit": False}  # v1 keeps its holdout unseen: the cycles' gate judges on it
    config.pop("actions")
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    assert project.train().promoted
    return project


def _configure_loop(project: Project, receiver_url: str, threshold: float) -> None:
    """Actions to the receiver for scores over ``threshold``, and a policy that retrains on labels."""
    path = project.settings.project_dir / "loopml.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["actions"] = {
        "endpoints": {"cases": {"kind": "webhook", "url": receiver_url, "secret_env": SECRET_ENV}},
        "rules": [
            {
                "name": "open-case",
                "when": [{"field": "score", "op": ">=", "value": threshold}],
                "endpoint": "cases",
                "payload": {"transaction_id": "{inputs.transaction_id}", "score": "{score}"},
            }
        ],
        "allowed_hosts": ["127.0.0.1"],
        "allow_loopback": True,
        "batch": 20,  # small claims: both workers take turns on the outbox
        "interval_s": 0.2,
        "backoff_s": 0.05,
    }
    config["retrain"] = {
        "new_labels": NEW_LABELS,
        "interval_s": 0.3,
        "cooldown": "1s",
        "watch": "1m",
        # Retraining on the same rows gives the same model: a gain of 0 passes, so cycles promote
        # (no refit, and with unseen_share 1 both are judged on the rows the champion left out).
        "gate": {"min_improvement": 0.0, "calibration_tolerance": 10, "unseen_share": 1.0},
        "refit": False,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _traffic(
    api: int,
    url: str,
    records: list[dict[str, Any]],
    labels: list[int],
    calls: list[Call],
    stopped: threading.Event,
) -> None:
    """Score ``records`` ``BATCH`` at a time until stopped; send each prediction's label back."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for start_at in range(0, len(records), BATCH):
            if stopped.is_set():
                return
            chunk = records[start_at : start_at + BATCH]
            sent = time.time()
            response = client.post(PREDICT, json=chunk)
            answered = time.time()
            version = response.json()["model_version"] if response.status_code == 200 else None
            calls.append(Call(api, sent, answered, response.status_code, version))
            if response.status_code != 200:
                continue
            feedback = [
                {"prediction_id": p["prediction_id"], "label": labels[start_at + i]}
                for i, p in enumerate(response.json()["predictions"])
            ]
            answer = client.post("/v1/feedback", json=feedback)
            assert answer.status_code == 200 and answer.json()["accepted"] == len(feedback), answer.text
            time.sleep(0.02)


def _outbox(engine: Engine) -> dict[str, int]:
    o = tables.action_outbox
    with engine.connect() as conn:
        return dict(conn.execute(select(o.c.status, func.count()).group_by(o.c.status)).all())  # type: ignore[arg-type]


def _wait(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:g} s"
        time.sleep(0.1)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[CaseReceiver, str]]:
    secret = new_secret()
    with CaseReceiver(secret=secret, port=0, db_path=tmp_path / "cases.db") as case_receiver:
        yield case_receiver, secret


def test_two_apis_and_two_workers_run_the_fraud_loop(
    tmp_path: Path, postgres_url: str, receiver: tuple[CaseReceiver, str]
) -> None:
    began = time.monotonic()
    cases, secret = receiver
    project = _project(tmp_path / "proj", postgres_url)
    engine = project.store.engine
    _, frame = load_snapshot(project.store, project.name)
    model = project.models.load()
    traffic = frame.tail(8000)
    scores = model.predict_frame(traffic[model.input_columns], observe=False)
    threshold = float(np.quantile(scores, 0.6))  # about 40% of the predictions open a case
    _configure_loop(project, cases.url, threshold)
    records = jsonable_records(traffic, [project.settings.id_column or "", *model.input_columns])
    labels = [int(v) for v in traffic[project.settings.target]]

    directory = project.settings.project_dir
    env = {SECRET_ENV: secret}
    apis = [start_api(directory, tmp_path / f"api-{i}.log", env) for i in range(2)]
    worker = ["worker", "--project", str(directory)]
    workers = [start(worker, tmp_path / f"worker-{i}.log", env) for i in range(2)]
    processes = [p for p, _ in apis] + workers
    calls: list[Call] = []
    stopped = threading.Event()
    threads = [
        threading.Thread(
            target=_traffic, args=(i, url, records[i::2], labels[i::2], calls, stopped), daemon=True
        )
        for i, (_, url) in enumerate(apis)
    ]
    try:
        for i, (process, url) in enumerate(apis):
            wait_ready(process, url, tmp_path / f"api-{i}.log")
        ready = time.monotonic()
        for thread in threads:
            thread.start()

        def promoted() -> list[Any]:
            return [m for m in alias_history(engine, project.name, "champion") if m.actor == ACTOR]

        _wait(lambda: promoted(), 60, "a promotion by a worker")
        first = promoted()[0]
        time.sleep(max(0.0, first.created_at.timestamp() + 3 - time.time()))  # 3 s of traffic after it
        stopped.set()
        for thread in threads:
            thread.join(30)
        _wait(lambda: set(_outbox(engine)) == {"delivered"}, 30, "delivering every action")
        time.sleep(1.0)  # a double delivery, if any, would arrive now
    finally:
        stopped.set()
        stop(processes)
    logs = [(tmp_path / f"worker-{i}.log").read_text() for i in range(2)]

    # No failed HTTP request, on either API.
    assert calls and all(c.status == 200 for c in calls), Counter(c.status for c in calls)
    assert {c.api for c in calls} == {0, 1}

    # Every action delivered exactly once: one accepted request per webhook-id, no duplicate.
    outbox = _outbox(engine)
    per_id = cases.accepted_per_id()
    o = tables.action_outbox
    with engine.connect() as conn:
        keys = set(conn.execute(select(o.c.key)).scalars())
        attempts = Counter(conn.execute(select(tables.action_deliveries.c.outbox_id)).scalars())
    assert outbox == {"delivered": len(keys)} and len(keys) >= 200, outbox
    assert set(per_id) == keys and set(per_id.values()) == {1}
    assert cases.outcomes() == {"accepted": len(keys), "duplicate": 0, "rejected": 0}
    assert len(attempts) == len(keys) and set(attempts.values()) == {1}  # one send per action

    # Both APIs serve each promotion within 2 s of the alias move, and never go back.
    moves = [m for m in alias_history(engine, project.name, "champion") if m.actor == ACTOR]
    end = max(c.answered for c in calls)
    swaps: list[dict[int, float]] = []
    for n, move in enumerate(moves):
        at = move.created_at.timestamp()
        until = moves[n + 1].created_at.timestamp() if n + 1 < len(moves) else end
        if at + 2 > end or until - at < 2:
            continue  # traffic stopped (or the next cycle promoted) too early to judge this one
        swap = {}
        for api in (0, 1):
            after = [c for c in calls if c.api == api and at <= c.sent < until]
            new = [c.answered - at for c in after if c.version == move.version]
            assert new, f"API {api} never served v{move.version}"
            swap[api] = min(new)
            late = [c for c in after if c.sent > at + 2 and c.version != move.version]
            assert not late, f"API {api} served v{late[0].version} > 2 s after v{move.version}'s promotion"
        swaps.append(swap)
    assert swaps and all(max(s.values()) <= 2.0 for s in swaps), swaps

    # One cycle at a time: the cycles' intervals do not overlap, and both workers ran the policy.
    cycles = sorted(list_events(engine, project.name, "cycle", limit=1000), key=lambda e: e.started_at)
    assert cycles and all(e.finished_at is not None for e in cycles), cycles
    for before, after_ in pairwise(cycles):
        assert before.finished_at is not None and before.finished_at <= after_.started_at, (before, after_)
    ran = [re.findall(r"cycle (\w+): challenger", text) for text in logs]
    busy = [text.count(BUSY) for text in logs]
    assert sum(busy) >= 1 and all(r or b for r, b in zip(ran, busy, strict=True)), logs

    print(
        f"\nfraud loop on 2 APIs + 2 workers (PostgreSQL): {len(calls)} predict calls "
        f"({len(calls) * BATCH} predictions), {len(keys)} actions each delivered once, "
        f"cycles {[(e.status, e.reasons) for e in cycles]}, promotions {[m.version for m in moves]}, "
        f"seconds from promotion to each API serving it {swaps}, cycles run per worker {ran}, "
        f"'busy' per worker {busy}; {ready - began:.1f} s setup, {time.monotonic() - began:.1f} s in all"
    )
