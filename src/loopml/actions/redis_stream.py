"""The ``redis`` action: each delivery becomes one entry of a Redis stream (``XADD``), once per key.

Options (``actions.endpoints.<name>`` in ``loopml.yaml``)::

    events: {kind: redis, url: "redis://127.0.0.1:6379/0", stream: loopml.cases, maxlen: 100000}

- ``url`` (required): ``redis://``, ``rediss://`` or ``unix://``; a password may come from the
  environment variable named by ``password_env`` instead of the URL.
- ``stream`` (required): the stream key.
- ``maxlen``: trim the stream to about this many entries (``MAXLEN ~``); 0 (default) keeps all.
- ``dedupe_ttl_s``: how long a delivered key is remembered (default 7 days).
- ``timeout_s``: socket timeouts (default 5).

Each entry has the fields ``key``, ``endpoint``, ``rule``, ``created_at`` and ``payload`` (JSON).
Idempotence: one Lua script, atomic on the server, checks the marker ``<dedupe_prefix><stream>:<key>``,
adds the entry, and stores its id in the marker with the TTL; a key sent again within the TTL returns
the first entry's id and adds nothing. A restarted worker re-sending after a crash is covered; so is a
restarted Redis, as far as its persistence (AOF or RDB) kept the markers. Not for Redis Cluster (the
stream and its markers would live in different slots).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from loopml._optional import require
from loopml.actions._options import Options, one_line
from loopml.actions.base import Delivery, DeliveryError

__all__ = ["RedisStreamAction"]

_OPTIONS = ("url", "stream", "maxlen", "dedupe_ttl_s", "dedupe_prefix", "timeout_s", "password_env")
_SCHEMES = ("redis://", "rediss://", "unix://")
# KEYS: stream, marker. ARGV: ttl, maxlen, field, value, field, value...
_SCRIPT = """
local seen = redis.call('GET', KEYS[2])
if seen then return {0, seen} end
local id
if tonumber(ARGV[2]) > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return {1, id}
"""
_PERMANENT = ("WRONGTYPE", "NOPERM", "NOAUTH", "WRONGPASS", "NOSCRIPT")


class RedisStreamAction:
    """``XADD`` each delivery to a Redis stream, at most once per idempotency key (within the TTL)."""

    kind: ClassVar[str] = "redis"
    thread_safe: ClassVar[bool] = True  # redis-py's connection pool serves concurrent sends

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        opts = Options(self.kind, name, options, _OPTIONS)
        self.name = name
        self.url = str(opts.text("url", example="redis://127.0.0.1:6379/0"))
        if not self.url.startswith(_SCHEMES):
            raise opts.error("url", f"must start with redis://, rediss:// or unix://, got '{self.url}'")
        self.stream = str(opts.text("stream", example="loopml.actions"))
        self.maxlen = int(opts.number("maxlen", 0, integer=True))
        self.ttl = int(opts.number("dedupe_ttl_s", 7 * 24 * 3600, minimum=1, integer=True))
        self.prefix = str(opts.text("dedupe_prefix", "loopml:dedupe:"))
        self.timeout = float(opts.number("timeout_s", 5.0, minimum=0.1))
        self.password = opts.env_secret("password_env")
        require("redis", "Redis stream actions")
        self._client: Any = None
        self._script: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            redis = require("redis", "Redis stream actions")
            extra = {"password": self.password} if self.password else {}
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, **extra
            )
            self._script = self._client.register_script(_SCRIPT)
        return self._script

    def marker(self, key: str) -> str:
        """The Redis key that remembers a delivered idempotency key."""
        return f"{self.prefix}{self.stream}:{key}"

    def _fields(self, delivery: Delivery) -> list[str]:
        payload = json.dumps(dict(delivery.payload), separators=(",", ":"), default=str)
        return [
            "key",
            delivery.key,
            "endpoint",
            delivery.endpoint,
            "rule",
            delivery.rule,
            "created_at",
            delivery.created_at.isoformat(),
            "payload",
            payload,
        ]

    def send(self, delivery: Delivery) -> None:
        """Add the entry unless this key was already added; raise :class:`DeliveryError` on failure."""
        redis = require("redis", "Redis stream actions")
        script = self._connect()
        args = [self.ttl, self.maxlen, *self._fields(delivery)]
        try:
            script(keys=[self.stream, self.marker(delivery.key)], args=args)
        except redis.exceptions.RedisError as exc:
            text = one_line(exc)
            permanent = isinstance(exc, redis.exceptions.AuthenticationError) or text.startswith(_PERMANENT)
            down = isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)
            raise DeliveryError(
                f"redis stream '{self.stream}': {text}", permanent=permanent, unreachable=down
            ) from None

    def close(self) -> None:
        """Close the connection pool (safe to call twice)."""
        client, self._client, self._script = self._client, None, None
        if client is not None:
            client.close()
