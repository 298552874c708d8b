"""Helpers for the actions tests (a module with a unique name, imported by the tests and conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, insert, select

from loopml.config import Settings, parse_settings
from loopml.examples.fraud.receiver import CaseReceiver
from loopml.store import tables, utcnow, write_predictions

SECRET_ENV = "LOOPML_TEST_CASES_SECRET"


def make_settings(url: str, tmp_path: Path, **actions: Any) -> Settings:
    """Project settings whose ``cases`` webhook endpoint posts to ``url``; ``actions`` overrides keys."""
    config: dict[str, Any] = {
        "endpoints": {"cases": {"kind": "webhook", "url": url, "secret_env": SECRET_ENV}},
        "rules": [
            {
                "name": "open-case",
                "when": [{"field": "score", "op": ">=", "value": 0.5}],
                "endpoint": "cases",
                "payload": {"transaction_id": "{inputs.transaction_id}", "score": "{score}"},
            }
        ],
        "allowed_hosts": ["127.0.0.1"],
        "allow_loopback": True,
        "backoff_s": 0.05,
        "max_backoff_s": 0.2,
        **actions,
    }
    text = yaml.safe_dump(
        {"name": "fraud", "source": {"kind": "csv", "path": "x.csv"}, "target": "y", "actions": config}
    )
    return parse_settings(text, project_dir=tmp_path, environ={})


def prediction_rows(
    n: int, score: float | Callable[[int], float] = 0.9, **inputs: Any
) -> list[dict[str, Any]]:
    """``n`` prediction-log rows (fresh ids) with ``transaction_id`` = 0..n-1 and ``card_id`` = i % 7."""
    now = utcnow()
    rows = []
    for i in range(n):
        s = score(i) if callable(score) else score
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "model_name": "fraud",
                "model_version": 1,
                "created_at": now,
                "origin": "api",
                "inputs": {"transaction_id": i, "card_id": i % 7, **inputs},
                "score": s,
                "output": {"score": s, "label": int(s >= 0.5)},
            }
        )
    return rows


def log_predictions(engine: Engine, settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to the prediction log with the actions hook, as the API and batch do."""
    from loopml.actions import enqueue_for_predictions

    write_predictions(engine, rows, on_write=enqueue_for_predictions(settings.actions))


def outbox_counts(engine: Engine) -> dict[str, int]:
    o = tables.action_outbox
    with engine.connect() as conn:
        return dict(conn.execute(select(o.c.status, func.count()).group_by(o.c.status)).all())  # type: ignore[arg-type]


def register_version(engine: Engine, threshold: float, name: str = "fraud", version: int = 1) -> None:
    """A model_versions row whose signature records the cost-optimal decision threshold."""
    with engine.begin() as conn:
        conn.execute(
            insert(tables.model_versions),
            {
                "name": name,
                "version": version,
                "artifact_key": "x",
                "sha256": "0" * 64,
                "flavor": "skops",
                "metrics": {},
                "signature": {"threshold": threshold, "task": "binary"},
                "created_at": utcnow(),
            },
        )


class ReceiverProcess:
    """The example case receiver in its own process (``python -m loopml.examples.fraud.receiver``)."""

    def __init__(self, secret: str, db_path: Path, port: int = 0) -> None:
        self.secret, self.db_path, self.port = secret, db_path, port
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> ReceiverProcess:
        env = {**os.environ, "RECEIVER_SECRET": self.secret}
        command = [sys.executable, "-m", "loopml.examples.fraud.receiver", "--port", str(self.port)]
        command += ["--db", str(self.db_path), "--secret-env", "RECEIVER_SECRET"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://"), f"the receiver did not start: {self.url!r}"
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def view(self) -> CaseReceiver:
        """The receiver's stored cases and request log, read from its SQLite file (not listening)."""
        return CaseReceiver(secret=self.secret, db_path=self.db_path)


class SimClock:
    """A simulated clock for the dispatcher (``now=clock``): the real time plus an offset that only
    grows when told (so actions written meanwhile are never in its future)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return utcnow() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def to(self, when: datetime) -> None:
        """Move forward to ``when`` (never back)."""
        with self._lock:
            self._offset += max(timedelta(0), when - (utcnow() + self._offset))
