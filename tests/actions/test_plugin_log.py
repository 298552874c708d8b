"""The ``log`` action: JSON lines to a logger or to a file shared by several processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loopml.actions.base import Delivery
from loopml.actions.log import LogAction
from loopml.errors import ConfigError


def _delivery(key: str, **payload: Any) -> Delivery:
    return Delivery(key, "audit", "open-case", payload, datetime(2026, 11, 27, tzinfo=UTC))


def _lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines (a line torn by a crash does not parse and is left out)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_logger_mode_writes_one_json_line_per_key(caplog: pytest.LogCaptureFixture) -> None:
    action = LogAction("audit", {"logger": "loopml.actions.test", "level": "warning"})
    with caplog.at_level(logging.WARNING, logger="loopml.actions.test"):
        action.send(_delivery("k-1", score=0.9))
        action.send(_delivery("k-1", score=0.9))
    [record] = caplog.records
    line = json.loads(record.getMessage())
    assert record.levelno == logging.WARNING
    assert {k: line[k] for k in ("endpoint", "rule", "key", "attempt", "payload")} == {
        "endpoint": "audit",
        "rule": "open-case",
        "key": "k-1",
        "attempt": 1,
        "payload": {"score": 0.9},
    }


def test_file_mode_skips_keys_already_in_the_file_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "actions.jsonl"
    options = {"path": "logs/actions.jsonl", "project_dir": str(tmp_path)}
    first = LogAction("audit", options)
    first.send(_delivery("k-1", n=1))
    with path.open("ab") as file:
        file.write(b'{"key": "k-torn", "payl')  # a crash in the middle of a write
    second = LogAction("audit", options)  # a restarted worker
    second.send(_delivery("k-1", n=1))
    second.send(_delivery("k-2", n=2))
    assert [line["key"] for line in _lines(path)] == ["k-1", "k-2"]
    assert path.read_text().count("\n") == 3  # k-1, the torn line, k-2 on a line of its own


def _writer(path: str, start: int) -> None:
    action = LogAction("audit", {"path": path, "fsync": False})
    for i in range(start, start + 150):
        action.send(_delivery(f"k-{i % 200}", i=i % 200))


def test_processes_sharing_a_file_write_each_key_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.jsonl")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(path, start)) for start in (0, 50, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert all(w.exitcode == 0 for w in workers)
    keys = [line["key"] for line in _lines(Path(path))]
    assert len(keys) == 200 and set(keys) == {f"k-{i}" for i in range(200)}


def test_a_folder_is_not_a_log_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"actions\.endpoints\.audit\.path is a folder"):
        LogAction("audit", {"path": str(tmp_path)})
