"""The access log: one record per HTTP request on the ``loopml.access`` logger, with a request id.

Each record carries ``method``, ``path``, ``status``, ``duration_ms`` and ``request_id`` as fields
(keys of their own under ``--log-format json``). The request id is the client's ``X-Request-ID``
when it sends a sane one (up to 128 characters of ``[A-Za-z0-9._:-]``), else a fresh one; the
response carries it back in ``X-Request-ID``. Records are made only when the logger is enabled
for INFO (``--log-format json`` enables it; plain text stays quiet by default).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLogMiddleware", "access_log"]

access_log = logging.getLogger("loopml.access")
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _request_id(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _SANE_ID.fullmatch(value):
            return bytes(value)
    return uuid.uuid4().hex.encode()


class AccessLogMiddleware:
    """Pure ASGI middleware (no per-request task or body copy): logs after the response is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start, request_id, status = time.perf_counter(), _request_id(scope), [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._log(scope, status[0], (time.perf_counter() - start) * 1000, request_id.decode())

    @staticmethod
    def _log(scope: Scope, status: int, duration_ms: float, request_id: str) -> None:
        fields: dict[str, Any] = {
            "method": scope.get("method", ""),
            "path": scope.get("path", ""),
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "request_id": request_id,
        }
        client = scope.get("client")
        if client:
            fields["client"] = f"{client[0]}:{client[1]}"
        access_log.info(
            "%s %s %d %.2f ms", fields["method"], fields["path"], status, duration_ms, extra=fields
        )
