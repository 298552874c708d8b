"""Request bodies: one JSON reader for every route, and a deadline on the body's arrival.

:func:`read_json` is the only way a route reads its body. It refuses (413) a body over the route's
byte limit before anything parses it, and (422) one that is not JSON or nests deeper than
:data:`MAX_JSON_DEPTH` levels (the parsers stop at their own depth limits, and a recursion error is
answered the same way), naming what was wrong.

:class:`BodyDeadline` (ASGI middleware) gives each request ``serve.body_timeout`` seconds for its
body to arrive: a client that declares ``Content-Length: 1000`` and sends 19 bytes gets a 408 once
the time is up, and the connection is closed (``Connection: close``), so a slow body cannot hold a
worker or a connection for ever. Time spent before the route reads the body counts too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import InputError, PayloadTooLargeError, RequestTimeoutError

__all__ = ["MAX_JSON_DEPTH", "BodyDeadline", "json_depth", "parse_json", "read_body", "read_json"]

# Deeper than any body a route takes (a v2 tensor's rows are 5 levels down); 2,000 nested ``[``
# would otherwise reach Python's recursion limit in the parser that reads NaN literals.
MAX_JSON_DEPTH = 64


async def read_json(
    request: Request, limit: int, *, nan_literals: bool = False, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """The JSON body, refused (413) once it passes ``limit`` bytes, before anything parses it, and
    (422) when it is not JSON or nests deeper than ``max_depth`` levels.

    ``nan_literals`` also reads the ``NaN`` / ``Infinity`` literals many clients write for a missing
    reading, so that validation can name the field holding one rather than refuse the whole body.
    """
    return parse_json(await read_body(request, limit), nan_literals=nan_literals, max_depth=max_depth)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) once it passes ``limit`` bytes (or declares more), before
    anything parses it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes, *, nan_literals: bool = False, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``body`` parsed (see :func:`read_json`); an :class:`InputError` for text that is not JSON or
    nests deeper than ``max_depth``."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson stops at 1024 levels
            raise _too_deep(max_depth) from None
        if not nan_literals:
            raise InputError(f"request body is not valid JSON: {exc}.") from None
        try:
            value = json.loads(body)  # the standard library reads NaN and Infinity
        except RecursionError:
            raise _too_deep(max_depth) from None
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"request body is not valid JSON: {err}.") from None
    if json_depth(value, max_depth) > max_depth:
        raise _too_deep(max_depth)
    return value


def _too_deep(max_depth: int) -> InputError:
    return InputError(
        f"request body nests deeper than {max_depth} levels of arrays and objects; "
        "send records of plain values (see /docs)."
    )


def json_depth(value: Any, stop: int | None = None) -> int:
    """How deep arrays and objects nest in a parsed JSON value (walked without recursion); with
    ``stop``, the walk ends as soon as it passes that depth.

    >>> json_depth([{"a": [1, "]]]"]}]), json_depth(1), json_depth([[[[]]]], stop=2)
    (3, 0, 3)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if stop is not None and deepest > stop:
            break
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


class _BodyTimeout(Exception):
    """The body did not arrive in time (raised from ``receive``, answered by :class:`BodyDeadline`)."""


class BodyDeadline:
    """ASGI middleware: a request whose body has not arrived ``timeout`` seconds after the request
    started gets a 408 (in loopml's error shape) and ``Connection: close``."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        state = {"body_done": False, "started": False}

        async def timed_receive() -> Message:
            if state["body_done"]:
                return await receive()  # after the body: a wait for disconnect has no deadline
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except Exception as exc:
            if not _timed_out(exc) or state["started"]:
                raise
            await self._answer(send)

    async def _answer(self, send: Send) -> None:
        error = RequestTimeoutError(
            f"the request body did not arrive within {self.timeout:g} s (serve.body_timeout); "
            "the connection is closed.",
            hint="Send the whole body at once, with a Content-Length that matches it.",
        )
        body = orjson.dumps({"error": error.to_dict()})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is the body's timeout (also inside an exception group of a task group)."""
    if isinstance(exc, _BodyTimeout):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_timed_out(inner) for inner in exc.exceptions)
    return exc.__cause__ is not None and isinstance(exc.__cause__, _BodyTimeout)
