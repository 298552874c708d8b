"""A real ``loopml serve`` process: graceful shutdown on SIGTERM, and model swaps under load.

The load generator is a few threads on loopback that stop by themselves; every request must succeed.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from loopml.project import Project
from loopml.registry import get_version, move_alias, set_alias
from loopml.serve import ServerProcess
from loopml.store import tables

PREDICT = "/v1/models/fraud/predict"
ADMIN = secrets.token_urlsafe(32)
_ids = itertools.count(3_000_000)


def record() -> dict[str, Any]:
    entity = next(_ids)
    return {
        "transaction_id": entity,
        "customer_id": entity,
        "terminal_id": entity,
        "tx_datetime": "2026-01-20T14:30:00",
        "tx_amount": 42.5,
    }


@dataclass
class Load:
    """Threads posting single records until stopped (or ``limit_s``): (sent, received, status, version)."""

    url: str
    threads: int = 4
    limit_s: float = 30.0
    results: list[tuple[float, float, int, int | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _worker(self) -> None:
        deadline = time.monotonic() + self.limit_s
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = client.post(PREDICT, json=record())
                    status = response.status_code
                    version = response.json().get("model_version") if status == 200 else None
                except httpx.HTTPError:
                    status, version = -1, None
                self.results.append((sent, time.monotonic(), status, version))

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    def failures(self) -> list[tuple[float, float, int, int | None]]:
        return [r for r in self.results if r[2] != 200]


ENV = {"LOOPML_SERVE__ADMIN_TOKEN": ADMIN, "LOOPML_SERVE__SHUTDOWN_DELAY": "1.0"}


@pytest.fixture(scope="module")
def served(
    two_version_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Project, ServerProcess]]:
    """One server for the swap tests (they run in order: a refused version, then a promotion)."""
    directory = tmp_path_factory.mktemp("lifecycle") / "proj"
    shutil.copytree(two_version_dir, directory)
    project = Project.open(directory, environ={})
    with ServerProcess(str(directory), env=ENV) as server:
        yield project, server


def test_a_damaged_artifact_under_load_is_refused_and_nothing_fails(
    served: tuple[Project, ServerProcess],
) -> None:
    project, server = served
    artifact = (
        Path(project.settings.artifacts_url) / get_version(project.store.engine, "fraud", 2).artifact_key
    )
    original = artifact.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with Load(server.url) as load:
        time.sleep(0.5)
        with project.store.engine.begin() as conn:  # moved behind loopml's back (set_alias would refuse)
            move_alias(conn, "fraud", "champion", 2, reason="test: damaged artifact")
        time.sleep(3.0)  # the server re-reads the alias every second and refuses version 2 each time
    assert len(load.results) > 20
    assert not load.failures(), load.failures()[:5]
    assert {r[3] for r in load.results} == {1}
    ready = httpx.get(f"{server.url}/health/ready").json()
    assert ready["model_version"] == 1
    artifact.write_bytes(original)  # restored, and the alias back on version 1, for the next test
    set_alias(project.store, "fraud", "champion", 1, reason="test: back")
    time.sleep(1.2)


def test_promotion_under_load_fails_nothing_and_switches_at_once(
    served: tuple[Project, ServerProcess],
) -> None:
    _, server = served
    with Load(server.url) as load:
        time.sleep(1.0)
        promoted_at = time.monotonic()
        move = httpx.post(
            f"{server.url}/v1/models/fraud/aliases/champion",
            json={"version": 2, "reason": "test: promote under load"},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert move.status_code == 200, move.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(r[3] == 2 for r in load.results):
            time.sleep(0.05)
        time.sleep(1.0)
    assert not load.failures(), load.failures()[:5]
    first_v2 = min(received for _, received, _, version in load.results if version == 2)
    # The swap is atomic: every request sent after the first answer from version 2 got version 2.
    late = [r for r in load.results if r[0] > first_v2 and r[3] != 2]
    assert not late, late[:5]
    assert {r[3] for r in load.results if r[1] < promoted_at} == {1}
    print(
        f"switched {first_v2 - promoted_at:.3f} s after the promotion; {len(load.results)} requests, 0 failed"
    )
    assert first_v2 - promoted_at < 10  # loading the version and its window history; ~1 s here


def test_sigterm_turns_ready_503_finishes_in_flight_requests_and_drains_the_log(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    with ServerProcess(str(project.settings.project_dir), env=ENV) as server:
        check_graceful_shutdown(project, server)


def check_graceful_shutdown(project: Project, server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        done = [
            client.post(PREDICT, json=record()).json()["predictions"][0]["prediction_id"] for _ in range(20)
        ]
    release = threading.Event()
    body = orjson.dumps(record())
    in_flight: dict[str, Any] = {}

    def slow_upload() -> Iterator[bytes]:
        yield body[:10]
        release.wait(30)
        yield body[10:]

    def send() -> None:
        headers = {"content-type": "application/json", "content-length": str(len(body))}
        response = httpx.post(f"{server.url}{PREDICT}", content=slow_upload(), headers=headers, timeout=30)
        in_flight["status"], in_flight["body"] = response.status_code, response.json()

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)  # the request has started: its headers and part of its body are in
    server.terminate()
    time.sleep(0.2)
    ready = httpx.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503  # load balancers stop sending traffic; the server still answers
    assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
    deadline = time.monotonic() + 10  # after the delay the server stops accepting connections
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{server.url}/health/live", timeout=1)
        except httpx.TransportError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the server kept accepting connections after its shutdown delay")
    release.set()  # the request in flight completes after the listener closed
    sender.join(30)
    assert in_flight.get("status") == 200, in_flight
    assert server.wait(30) == 0
    ids = [*done, in_flight["body"]["predictions"][0]["prediction_id"]]
    with project.store.engine.connect() as conn:
        logged = conn.execute(
            select(tables.predictions.c.id).where(tables.predictions.c.id.in_(ids))
        ).scalars()
        assert set(logged) == set(ids)  # every acknowledged prediction was written before the exit
