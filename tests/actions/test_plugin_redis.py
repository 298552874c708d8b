"""The ``redis`` action against the real Redis in ``LOOPML_TEST_REDIS_URL`` (beyond the contract suite)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loopml.actions.base import Delivery, DeliveryError
from loopml.actions.redis_stream import RedisStreamAction
from loopml.errors import ConfigError

redis = pytest.importorskip("redis")


@pytest.fixture
def client() -> Iterator[Any]:
    url = os.environ.get("LOOPML_TEST_REDIS_URL")
    if not url:
        pytest.skip("LOOPML_TEST_REDIS_URL is not set; Redis action tests skipped")
    conn = redis.Redis.from_url(url)
    tag = f"loopml-test:{uuid.uuid4().hex}"
    conn.tag = tag
    conn.url = url
    yield conn
    keys = conn.keys(f"{tag}*")
    if keys:
        conn.delete(*keys)
    conn.close()


def _delivery(key: str, **payload: Any) -> Delivery:
    return Delivery(key, "events", "open-case", payload, datetime(2026, 11, 27, tzinfo=UTC))


def _action(client: Any, **options: Any) -> RedisStreamAction:
    base = {"url": client.url, "stream": f"{client.tag}:stream", "dedupe_prefix": f"{client.tag}:seen:"}
    return RedisStreamAction("events", {**base, **options})


def test_entry_fields_and_the_marker_that_remembers_the_key(client: Any) -> None:
    action = _action(client, dedupe_ttl_s=120)
    action.send(_delivery("k-1", card_id="c-9", score=0.75))
    action.close()
    [(entry_id, fields)] = client.xrange(f"{client.tag}:stream")
    assert {k.decode(): v.decode() for k, v in fields.items() if k != b"payload"} == {
        "key": "k-1",
        "endpoint": "events",
        "rule": "open-case",
        "created_at": "2026-11-27T00:00:00+00:00",
    }
    assert json.loads(fields[b"payload"]) == {"card_id": "c-9", "score": 0.75}
    marker = action.marker("k-1")
    assert client.get(marker) == entry_id and 100 < client.ttl(marker) <= 120


def test_maxlen_trims_the_stream(client: Any) -> None:
    action = _action(client, maxlen=10)
    for i in range(150):
        action.send(_delivery(f"k-{i}", i=i))
    action.close()
    length = client.xlen(f"{client.tag}:stream")
    assert 10 <= length < 150  # approximate trimming drops whole internal nodes (100 entries each)


def test_a_key_of_the_wrong_type_fails_permanently_and_remembers_nothing(client: Any) -> None:
    client.set(f"{client.tag}:stream", "not a stream")
    action = _action(client)
    with pytest.raises(DeliveryError, match="WRONGTYPE") as info:
        action.send(_delivery("k-1", a=1))
    assert info.value.permanent
    assert client.get(action.marker("k-1")) is None  # so a replay after the fix delivers it
    client.delete(f"{client.tag}:stream")
    action.send(_delivery("k-1", a=1))
    action.close()
    assert client.xlen(f"{client.tag}:stream") == 1


def test_password_env_must_be_set(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPML_TEST_NO_SUCH_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="password_env: environment variable LOOPML_TEST_NO_SUCH_PASSWORD"):
        _action(client, password_env="LOOPML_TEST_NO_SUCH_PASSWORD")


def _serve(port: int, folder: Path) -> subprocess.Popen[bytes]:
    args = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--appendonly",
        "yes",
        "--save",
        "",
    ]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.exceptions.ConnectionError):  # refused, or LOADING the AOF
            if client.ping():
                client.close()
                return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not on PATH")
def test_a_restarted_server_is_reached_again_and_still_deduplicates(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = _serve(port, tmp_path)  # a private server with an append-only file: the shared one stays up
    try:
        action = RedisStreamAction("events", {"url": f"redis://127.0.0.1:{port}/0", "stream": "cases"})
        action.send(_delivery("k-1", a=1))
        server.terminate()
        server.wait(10)
        with pytest.raises(DeliveryError) as info:
            action.send(_delivery("k-2", a=2))
        assert info.value.unreachable and not info.value.permanent
        server = _serve(port, tmp_path)
        action.send(_delivery("k-2", a=2))
        action.send(_delivery("k-1", a=1))  # its marker survived the restart in the append-only file
        action.close()
        client = redis.Redis(host="127.0.0.1", port=port)
        assert [f[b"key"] for _, f in client.xrange("cases")] == [b"k-1", b"k-2"]
        client.close()
    finally:
        server.terminate()
        server.wait(10)
