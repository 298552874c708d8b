"""The ``nats`` action against the real NATS JetStream in ``LOOPML_TEST_NATS_URL``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loopml.actions.base import Delivery, DeliveryError
from loopml.actions.nats import NatsAction

nats = pytest.importorskip("nats")


async def _jetstream(url: str, call: Any) -> Any:
    client = await nats.connect(url)
    try:
        return await call(client.jetstream())
    finally:
        await client.close()


def _js(url: str, call: Any) -> Any:
    return asyncio.run(_jetstream(url, call))


@pytest.fixture
def target() -> Iterator[dict[str, str]]:
    url = os.environ.get("LOOPML_TEST_NATS_URL")
    if not url:
        pytest.skip("LOOPML_TEST_NATS_URL is not set; NATS action tests skipped")
    tag = uuid.uuid4().hex
    names = {"url": url, "subject": f"loopml.test.{tag}", "stream": f"LOOPML_TEST_{tag}"}
    yield names
    for stream in (names["stream"], names["stream"] + "_OTHER"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            _js(url, lambda js, s=stream: js.delete_stream(s))


def _delivery(key: str, **payload: Any) -> Delivery:
    return Delivery(key, "cases", "open-case", payload, datetime(2026, 11, 27, tzinfo=UTC))


def _count(target: dict[str, str]) -> int:
    info = _js(target["url"], lambda js: js.stream_info(target["stream"]))
    return int(info.state.messages)


def test_created_stream_keeps_the_duplicate_window(target: dict[str, str]) -> None:
    action = NatsAction("cases", {**target, "create": True, "duplicate_window_s": 600})
    action.send(_delivery("k-1", a=1))
    action.close()
    info = _js(target["url"], lambda js: js.stream_info(target["stream"]))
    assert info.config.duplicate_window == 600 and info.config.subjects == [target["subject"]]
    message = _js(target["url"], lambda js: js.get_msg(target["stream"], 1))
    assert message.headers["Nats-Msg-Id"] == "k-1" and message.headers["loopml-rule"] == "open-case"


def test_no_stream_for_the_subject_is_retryable(target: dict[str, str]) -> None:
    action = NatsAction("cases", {"url": target["url"], "subject": target["subject"]})
    with pytest.raises(DeliveryError, match="no JetStream stream captures") as info:
        action.send(_delivery("k-1", a=1))
    action.close()
    assert not info.value.permanent


def test_a_stream_other_than_the_expected_one_is_permanent(target: dict[str, str]) -> None:
    _js(
        target["url"],
        lambda js: js.add_stream(name=target["stream"] + "_OTHER", subjects=[target["subject"]]),
    )
    action = NatsAction("cases", target)  # expects target["stream"], but _OTHER captures the subject
    with pytest.raises(DeliveryError) as info:
        action.send(_delivery("k-1", a=1))
    action.close()
    assert info.value.permanent and "expected stream" in str(info.value).lower()


def test_concurrent_sends_share_one_connection_and_close_stops_the_loop(target: dict[str, str]) -> None:
    action = NatsAction("cases", {**target, "create": True})
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: action.send(_delivery(f"k-{i % 20}", i=i % 20)), range(40)))
    assert _count(target) == 20  # 40 sends, 20 keys
    action.close()
    action.close()
    assert not [t for t in threading.enumerate() if t.name == "loopml-nats-cases"]


def test_a_forked_child_sends_through_its_own_loop(target: dict[str, str]) -> None:
    action = NatsAction("cases", {**target, "create": True})
    action.send(_delivery("parent", a=1))  # the parent's loop thread is running now
    pid = os.fork()
    if pid == 0:  # the child: no loop thread was copied; the plugin must start its own
        code = 0
        try:
            action.send(_delivery("child", a=2))
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    action.send(_delivery("parent-again", a=3))
    action.close()
    assert os.waitstatus_to_exitcode(status) == 0 and _count(target) == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(port: int, store: Path) -> subprocess.Popen[bytes]:
    args = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("nats-server did not start")


def _send_until_accepted(action: NatsAction, delivery: Delivery) -> None:
    """Retry while JetStream recovers its streams after a start (a retryable failure meanwhile)."""
    for _ in range(50):
        try:
            action.send(delivery)
            return
        except DeliveryError as exc:
            assert not exc.permanent, str(exc)
            time.sleep(0.1)
    action.send(delivery)


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not on PATH")
def test_a_restarted_server_is_reached_again_and_still_deduplicates(tmp_path: Path) -> None:
    port = _free_port()
    server = _start_server(port, tmp_path)  # a private server: the shared one is not restarted
    try:
        options: dict[str, Any] = {
            "url": f"nats://127.0.0.1:{port}",
            "subject": "cases",
            "stream": "CASES",
            "create": True,
            "timeout_s": 1,
        }
        action = NatsAction("cases", options)
        action.send(_delivery("k-1", a=1))
        server.terminate()
        server.wait(10)
        with pytest.raises(DeliveryError) as info:
            action.send(_delivery("k-2", a=2))
        assert info.value.unreachable and not info.value.permanent
        server = _start_server(port, tmp_path)
        _send_until_accepted(action, _delivery("k-2", a=2))  # as the dispatcher retries
        action.send(_delivery("k-1", a=1))  # stored before the restart: still a duplicate
        action.close()
        info = _js(options["url"], lambda js: js.stream_info("CASES"))
        assert info.state.messages == 2
    finally:
        server.terminate()
        server.wait(10)
