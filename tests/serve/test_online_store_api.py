"""The API with its window state in Redis (``serve.online_store``), through a Redis of the test's own.

A ``redis-server`` process started here on a free port (so that it can be stopped and started again
empty without touching the shared one): while it is down, a model with window features answers a
clear 503 and readiness says why, rather than serving features computed from a partial history; once
it is back, empty, the state is warmed again from the store and the features are right again. A
model without window features keeps serving throughout. Skips without a ``redis-server`` binary.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from loopml.errors import ConfigError
from loopml.project import Project
from loopml.serve import free_port

redis = pytest.importorskip("redis")

PREDICT = "/v1/models/fraud/predict?features=true"
RECORD: dict[str, Any] = {
    "transaction_id": 8_000_001,
    "customer_id": 1,
    "terminal_id": 2,
    "tx_datetime": "2026-01-29T14:30:00",
    "tx_amount": 42.5,
}


class PrivateRedis:
    """One ``redis-server`` on ``port``, in memory only (no dump file)."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port, self.directory = port, directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.exceptions.ConnectionError:  # not up yet
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary on PATH; the Redis outage tests skipped")
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def open_online(directory: Path, url: str) -> Project:
    return Project.open(directory, environ={"LOOPML_ONLINE_URL": url})


def predict(client: TestClient, record: dict[str, Any]) -> Any:
    return client.post(PREDICT, json=record)


def until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_redis_down_answers_503_and_readiness_says_why(
    trained_template: Path, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    directory = tmp_path / "proj"
    shutil.copytree(trained_template, directory)
    project = open_online(directory, private_redis.url)
    embedded = Project.open(directory, environ={}).models.load()
    with TestClient(project.app()) as client:
        first = predict(client, RECORD)
        assert first.status_code == 200, first.text
        expected = embedded.score_records([RECORD], windows=True).window_rows()[0]
        assert first.json()["predictions"][0]["window_features"] == expected
        assert client.get("/health/ready").status_code == 200

        private_redis.stop()
        down = predict(client, {**RECORD, "transaction_id": 8_000_002})
        assert down.status_code == 503
        error = down.json()["error"]
        assert error["code"] == "online_state_unavailable"
        assert "cannot be reached" in error["message"] and "serve.online_store" in error["message"]
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["problem"]["code"] == "online_state_unavailable"

        private_redis.start()  # back, empty: warmed again from the store before serving
        until(lambda: client.get("/health/ready").status_code == 200)
        later = {**RECORD, "transaction_id": 8_000_003, "tx_datetime": "2026-01-29T14:40:00"}
        again = predict(client, later)
        assert again.status_code == 200, again.text
        # the record served before the outage is in the store's log: it is in the rewarmed windows
        served = again.json()["predictions"][0]["window_features"]
        assert served["customer_id__tx_amount__count_1h"] == 1.0
        reloaded = Project.open(directory, environ={}).models.load()  # the embedded state, from the store
        assert served == reloaded.score_records([later], windows=True, observe=False).window_rows()[0]


def test_a_model_without_window_features_keeps_serving(
    trained_template: Path, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    directory = tmp_path / "plain"
    shutil.copytree(trained_template, directory)
    config_path = directory / "loopml.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["features"].pop("windows")
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    trained = Project.open(directory, environ={})
    version = trained.train().version.version
    trained.models.promote(version)
    trained.store.engine.dispose()
    private_redis.stop()  # Redis down from the start
    with TestClient(open_online(directory, private_redis.url).app()) as client:
        answer = predict(client, RECORD)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["window_features"] == {}
        assert client.get("/health/ready").status_code == 200
    assert np.isfinite(answer.json()["predictions"][0]["score"])


def test_batch_scoring_online_shares_the_state_with_the_api(
    trained_template: Path, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """``predict_file(online=True)`` (``loopml predict --online``) adds its events to the state the
    API reads: the API's next event of the same card sees them, though nothing was logged."""
    directory = tmp_path / "proj"
    shutil.copytree(trained_template, directory)
    project = open_online(directory, private_redis.url)
    card = {**RECORD, "customer_id": 9_100_001}
    rows = [
        {**card, "transaction_id": 8_100_000 + i, "tx_datetime": f"2026-01-29T14:0{i}:00"} for i in range(3)
    ]
    frame = pd.DataFrame(rows).assign(tx_datetime=lambda f: pd.to_datetime(f["tx_datetime"]))
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    done = project.predictions.predict_file(
        tmp_path / "in.parquet", tmp_path / "out.parquet", online=True, log_predictions=False
    )
    assert done.rows == 3
    with TestClient(project.app()) as client:
        answer = predict(client, {**card, "transaction_id": 8_100_010})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["window_features"]["customer_id__tx_amount__count_1h"] == 3.0
    with pytest.raises(ConfigError, match=r"serve\.online_store"):
        Project.open(directory, environ={}).models.load(online=True)
