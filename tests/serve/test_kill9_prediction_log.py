"""``kill -9`` of a real ``loopml serve`` while it logs predictions loses no acknowledged record.

Each of 5 rounds starts to post 10,000 predictions (100 requests of 100 records, 4 connections at
a time) and kills the server with SIGKILL after a random number (5 to 50) of responses. Every
prediction id of every 200 response must then be in the store: the next server start replays the
dead process's journal (the last round replays it with ``replay_journal``, as ``loopml worker``
and ``monitor`` do).

Each server is the ``loopml serve`` command (``loopml.cli.main``) in a process of its own, forked
from one helper process that imported loopml once: the same server, without paying ~5 s of CPU
for the imports five times over.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from loopml.project import Project
from loopml.serve import free_port
from loopml.store import journal_dir, replay_journal, tables

PREDICT = "/v1/models/fraud/predict"
ROUNDS, REQUESTS, RECORDS, CONNECTIONS = 5, 100, 100, 4
_entities = itertools.count(5_000_000)

# Reads a port per line, forks `loopml serve --port PORT` for it, answers the child's pid.
_FORKER = """
import os, signal, sys
import loopml.cli, loopml.dashboard, loopml.project, loopml.serve, lightgbm, sklearn.pipeline, uvicorn
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the killed servers
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0), os.dup2(log, 1), os.dup2(log, 2)
        sys.argv = ["loopml", "serve", "--project", sys.argv[1], "--port", line.strip()]
        try:
            loopml.cli.main()
        finally:
            os._exit(0)
    print(pid, flush=True)
"""


class Servers:
    """Starts ``loopml serve`` processes for one project; each is killed with SIGKILL by the test."""

    def __init__(self, directory: Path, log: Path) -> None:
        self.log = log
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-c", _FORKER, str(directory), str(log)]
        self.forker = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )

    def start(self) -> tuple[int, str]:
        """A new server, ready (model loaded, previous journals replayed): ``(pid, url)``."""
        port = free_port()
        assert self.forker.stdin is not None and self.forker.stdout is not None
        self.forker.stdin.write(f"{port}\n")
        self.forker.stdin.flush()
        pid, url = int(self.forker.stdout.readline()), f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert _alive(pid), f"the server exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    return pid, url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not become ready: {self.log.read_text()[-2000:]}")

    def close(self) -> None:
        self.forker.kill()
        self.forker.wait(30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def servers(trained_template: Path, tmp_path: Path) -> Iterator[tuple[Project, Servers]]:
    directory = tmp_path / "proj"
    shutil.copytree(trained_template, directory)
    project = Project.open(directory, environ={})
    launcher = Servers(directory, tmp_path / "servers.log")
    try:
        yield project, launcher
    finally:
        launcher.close()
        project.store.engine.dispose()


def _records() -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": (entity := next(_entities)),
            "customer_id": entity % 997,
            "terminal_id": entity % 89,
            "tx_datetime": "2026-01-20T14:30:00",
            "tx_amount": float(entity % 300),
        }
        for _ in range(RECORDS)
    ]


def _stored(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.predictions.c.id)).scalars())


def _load_then_kill(pid: int, url: str, kill_after: int) -> tuple[set[str], list[str]]:
    """Post predictions from a few threads; SIGKILL the server after ``kill_after`` responses."""
    acknowledged: set[str] = set()
    errors: list[str] = []
    lock, stop, answered = threading.Lock(), threading.Event(), itertools.count(1)
    tickets = iter(range(REQUESTS))

    def post() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set() and next(tickets, None) is not None:
                try:
                    response = client.post(PREDICT, json=_records())
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:300]}")
                    continue
                with lock:
                    acknowledged.update(p["prediction_id"] for p in response.json()["predictions"])
                if next(answered) == kill_after:
                    os.kill(pid, signal.SIGKILL)
                    stop.set()

    threads = [threading.Thread(target=post) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if not stop.is_set():  # the kill never came (requests failed): kill anyway, then report
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)
    return acknowledged, errors


def test_kill_9_loses_no_acknowledged_prediction(servers: tuple[Project, Servers]) -> None:
    project, launcher = servers
    engine, rng = project.store.engine, random.Random(9)
    acknowledged: set[str] = set()
    only_in_journal = 0  # acknowledged, not in the store when the server died: what the journal saved
    for round_ in range(ROUNDS):
        pid, url = launcher.start()  # ready only after the previous round's journal is replayed
        assert acknowledged <= _stored(engine), f"round {round_}: acknowledged predictions missing"
        acked, errors = _load_then_kill(pid, url, kill_after=rng.randint(5, REQUESTS // 2))
        assert not errors, f"{errors[0]}; server log: {launcher.log.read_text()[-2000:]}"
        assert len(acked) >= 5 * RECORDS
        acknowledged |= acked
        only_in_journal += len(acked - _stored(engine))
    replay_journal(engine, journal_dir(project.settings))
    assert acknowledged <= _stored(engine)
    assert list(journal_dir(project.settings).glob("*.jsonl")) == []
    assert only_in_journal > 0, "every kill came after the store had everything: the test proved nothing"
