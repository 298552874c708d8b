"""Connections a client may hold: a bound per client address, and a deadline on the first request.

uvicorn keeps a connection open as long as its client wants: one that connects and sends nothing,
or trickles a request's head, holds it for ever, and 400 of them hold 400. :func:`limited_protocol`
wraps uvicorn's HTTP protocol so that

- a client address holds at most ``per_client`` open connections: one more is answered
  ``429 too_many_connections`` and closed at once (``0``: no bound); behind a proxy every request
  comes from the proxy's address, so raise ``serve.max_connections_per_client`` there;
- a connection that has not sent a whole request head within ``head_timeout`` seconds of opening
  is answered ``408 request_timeout`` and closed (after a response, uvicorn's keep-alive timeout
  closes an idle one; a body that is slow to arrive is :class:`~loopml.serve.body.BodyDeadline`'s).

The bound counts connections of one server (one event loop); each worker process has its own.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from loopml.errors import LoopMLError, RequestTimeoutError, TooManyConnectionsError

__all__ = ["limited_protocol"]

_REASONS = {408: "Request Timeout", 429: "Too Many Requests"}


def _answer(transport: asyncio.BaseTransport, error: LoopMLError) -> None:
    """Write a whole HTTP response in loopml's error shape, then close the connection."""
    body = json.dumps({"error": error.to_dict()}).encode()
    status = error.http_status
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
        transport.write(head + body)
    transport.close()


def limited_protocol(base: type[asyncio.Protocol], per_client: int, head_timeout: float) -> type[Any]:
    """``base`` (uvicorn's HTTP protocol class) with the bounds of the module's docstring."""
    open_now: Counter[str] = Counter()  # open connections by client address, for this server

    class Limited(base):  # type: ignore[misc,valid-type]
        _client_host: str | None = None
        _refused = False
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) and peer else None
            if host is not None and per_client and open_now[host] >= per_client:
                self._refused = True
                _answer(transport, _too_many(host, per_client))
                return
            self._client_host = host
            if host is not None:
                open_now[host] += 1
            super().connection_made(transport)
            self._head_timer = asyncio.get_running_loop().call_later(head_timeout, self._head_late, transport)

        def _head_late(self, transport: asyncio.BaseTransport) -> None:
            if getattr(self, "cycle", None) is None and not transport.is_closing():  # no request yet
                _answer(transport, _late(head_timeout))

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def eof_received(self) -> bool | None:
            return None if self._refused else super().eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            if self._head_timer is not None:
                self._head_timer.cancel()
            host = self._client_host
            if host is not None:
                open_now[host] -= 1
                if open_now[host] <= 0:
                    del open_now[host]
            super().connection_lost(exc)

    Limited.__name__ = Limited.__qualname__ = f"Limited{base.__name__}"
    return Limited


def _too_many(host: str, limit: int) -> TooManyConnectionsError:
    return TooManyConnectionsError(
        f"client {host} already holds {limit} open connections, the limit "
        "(serve.max_connections_per_client); this one is closed.",
        hint="Reuse connections (keep-alive), or raise the limit behind a proxy.",
    )


def _late(seconds: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"no request arrived within {seconds:g} s of connecting (serve.body_timeout); "
        "the connection is closed."
    )
