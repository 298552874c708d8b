"""The ``nats`` action: each delivery is published to NATS JetStream, de-duplicated by the stream.

Options (``actions.endpoints.<name>`` in ``loopml.yaml``)::

    cases: {kind: nats, url: "nats://127.0.0.1:4222", subject: loopml.cases, stream: LOOPML_CASES,
            create: true}

- ``url`` (required): one ``nats://`` / ``tls://`` URL, several separated by commas, or a list.
- ``subject`` (required): the subject published to; a JetStream stream must capture it.
- ``stream``: the stream expected to store the message (the server refuses it if another one would);
  with ``create: true`` the stream is created for ``subject`` when missing, keeping file storage and a
  ``duplicate_window_s`` de-duplication window (default 1 day).
- ``token_env`` / ``credentials``: a token from the environment, or a ``.creds`` file.
- ``timeout_s``: connect and acknowledgement timeout (default 5).

The body is the payload as JSON; the ``Nats-Msg-Id`` header is the idempotency key, so JetStream stores
a key sent again within the stream's duplicate window once (after a crash, a retry, or from another
worker). ``send`` returns after the stream acknowledged the message. nats-py is asynchronous: each
plugin instance runs one event loop in a daemon thread, and ``send`` (from any thread) waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, ClassVar, TypeVar

from loopml._optional import require
from loopml.actions._options import Options, one_line
from loopml.actions.base import Delivery, DeliveryError

__all__ = ["NatsAction"]

T = TypeVar("T")
_OPTIONS = (
    "url",
    "subject",
    "stream",
    "create",
    "duplicate_window_s",
    "timeout_s",
    "token_env",
    "credentials",
)


class _LoopThread:
    """An asyncio event loop in a daemon thread; coroutines are run on it from any thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()


def _servers(opts: Options) -> list[str]:
    value = opts.raw.get("url")
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    if not value:
        opts.text("url", example="nats://127.0.0.1:4222")  # raises: missing
    if not isinstance(value, list) or not all(isinstance(s, str) and "://" in s for s in value):
        raise opts.error("url", f"must be nats:// URLs (a string or a list), got {opts.raw.get('url')!r}")
    return value


class NatsAction:
    """Publish each delivery to a JetStream subject with ``Nats-Msg-Id`` = the idempotency key."""

    kind: ClassVar[str] = "nats"
    thread_safe: ClassVar[bool] = True  # every send runs on the instance's own event loop

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        opts = Options(self.kind, name, options, _OPTIONS)
        self.name = name
        self.servers = _servers(opts)
        self.subject = str(opts.text("subject", example="loopml.cases"))
        if any(c in self.subject for c in " *>\t"):
            raise opts.error(
                "subject", f"must be a plain subject without spaces or wildcards, got '{self.subject}'"
            )
        self.stream: str | None = opts.text("stream", None, example="LOOPML_CASES")
        self.create = opts.flag("create", False)
        if self.create and not self.stream:
            raise opts.error("stream", "is needed with create: true (the name of the stream to create)")
        self.window = float(opts.number("duplicate_window_s", 86400.0, minimum=1.0))
        self.timeout = float(opts.number("timeout_s", 5.0, minimum=0.1))
        self.token = opts.env_secret("token_env")
        creds = opts.path("credentials", None)
        self.credentials = str(creds) if creds else None
        require("nats", "NATS JetStream actions")
        self._lock = threading.Lock()
        self._runner: _LoopThread | None = None
        self._client: Any = None
        self._connecting: asyncio.Lock | None = None
        self._pid = 0

    def _loop(self) -> _LoopThread:
        with self._lock:
            if self._runner is None or self._pid != os.getpid():
                self._client, self._connecting, self._pid = None, None, os.getpid()  # a fork starts afresh
                self._runner = _LoopThread(f"loopml-nats-{self.name}")
            return self._runner

    async def _connect(self) -> Any:
        if self._connecting is None:  # created on the loop's own thread, shared by concurrent sends
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._client is None or self._client.is_closed:
                self._client = await self._open()
            return self._client

    async def _open(self) -> Any:
        nats = require("nats", "NATS JetStream actions")

        async def quiet(_: Exception) -> None:  # failures surface through send's DeliveryError
            return None

        extra: dict[str, Any] = {"token": self.token} if self.token else {}
        if self.credentials:
            extra["user_credentials"] = self.credentials
        # Two tries, then NoServersError: nats-py's default would retry the first connect for minutes.
        client = await nats.connect(
            self.servers,
            connect_timeout=self.timeout,
            allow_reconnect=True,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=quiet,
            **extra,
        )
        if self.create:
            try:
                await self._ensure_stream(client.jetstream(timeout=self.timeout))
            except BaseException:
                await client.close()
                raise
        return client

    async def _ensure_stream(self, js: Any) -> None:
        nats = require("nats", "NATS JetStream actions")
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=self.stream, subjects=[self.subject], duplicate_window=self.window)

    async def _publish(self, delivery: Delivery) -> Any:
        client = await self._connect()
        body = json.dumps(dict(delivery.payload), separators=(",", ":"), default=str).encode()
        headers = {
            **dict(delivery.headers),
            "Nats-Msg-Id": delivery.key,
            "loopml-endpoint": delivery.endpoint,
            "loopml-rule": delivery.rule,
        }
        js = client.jetstream(timeout=self.timeout)
        return await js.publish(self.subject, body, timeout=self.timeout, stream=self.stream, headers=headers)

    def send(self, delivery: Delivery) -> None:
        """Publish and wait for the stream's acknowledgement; raise :class:`DeliveryError` on failure."""
        nats = require("nats", "NATS JetStream actions")
        where = f"nats subject '{self.subject}'"
        try:
            self._loop().run(self._publish(delivery), timeout=self.timeout * 3)
        except nats.js.errors.NoStreamResponseError:
            raise DeliveryError(
                f"{where}: no JetStream stream captures this subject", unreachable=True
            ) from None
        except (TimeoutError, FutureTimeout):
            raise DeliveryError(
                f"{where}: no acknowledgement within {self.timeout:g}s", unreachable=True
            ) from None
        except nats.errors.AuthorizationError as exc:
            raise DeliveryError(f"{where}: {one_line(exc)}", permanent=True) from None
        except nats.js.errors.APIError as exc:
            permanent = exc.code == 400 and exc.err_code == 10060  # expected stream does not match
            raise DeliveryError(f"{where}: {exc.description or one_line(exc)}", permanent=permanent) from None
        except (nats.errors.Error, OSError) as exc:
            down = isinstance(exc, nats.errors.NoServersError | nats.errors.ConnectionClosedError | OSError)
            raise DeliveryError(f"{where}: {one_line(exc)}", unreachable=down) from None

    def close(self) -> None:
        """Close the connection and stop the event loop (safe to call twice)."""
        with self._lock:
            runner, client, self._runner, self._client = self._runner, self._client, None, None
            self._connecting = None
        if runner is None or self._pid != os.getpid():
            return
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                runner.run(client.close(), timeout=self.timeout)
        runner.stop()
