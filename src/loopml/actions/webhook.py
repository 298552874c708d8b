"""The ``webhook`` action: a signed JSON POST, per the Standard Webhooks scheme, to an allowed host.

Options (``actions.endpoints.<name>`` in ``loopml.yaml``)::

    cases: {kind: webhook, url: "https://cases.example.com/hooks", secret_env: CASES_SECRET, timeout_s: 10}

``ca_file`` (a PEM file, relative to the project) trusts a private certificate authority instead of
the system's; ``headers`` adds fixed request headers.

Signing (https://www.standardwebhooks.com): ``webhook-id`` is the action's idempotency key,
``webhook-timestamp`` the Unix time of this attempt, and ``webhook-signature`` is
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` under the secret ``whsec_<base64 key>``.
The variable named by ``secret_env`` may hold several secrets separated by spaces (rotation): each
one signs, and the signatures are sent space-separated.

Safety: the host must match ``actions.allowed_hosts``; the name is resolved at send time and every
address checked (see :mod:`loopml.actions.netsafe`), then the request goes to that checked address
with the original ``Host`` header and TLS server name, never through a proxy; redirects are not
followed. Responses: 2xx delivered; 410 gone (the endpoint is disabled); 408, 425, 429 and 5xx are
retried (``Retry-After`` honoured); 3xx and other 4xx are permanent failures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from loopml._optional import require
from loopml.actions.base import Delivery, DeliveryError
from loopml.actions.netsafe import NetworkPolicy, Refused
from loopml.errors import ConfigError, did_you_mean

__all__ = ["WebhookAction", "parse_retry_after", "sign"]

_OPTIONS = {
    "url",
    "secret_env",
    "secret",
    "timeout_s",
    "headers",
    "allowed_hosts",
    "allow_private",
    "allow_loopback",
    "ca_file",
    "project_dir",  # set by loopml for every plugin (where a relative ca_file starts)
}
_RETRYABLE = {408, 425, 429}


@cache
def _tls_context() -> ssl.SSLContext:
    """One certificate-verifying TLS context per process (loading the CA bundle takes ~0.2 s)."""
    httpx = require("httpx", "webhook actions")
    context: ssl.SSLContext = httpx.create_ssl_context()
    return context


def _ca_context(options: Mapping[str, Any], where: str) -> ssl.SSLContext:
    """A verifying TLS context that trusts ``ca_file`` (a private CA's PEM) instead of the system's."""
    path = Path(str(options["ca_file"]))
    if not path.is_absolute():
        path = Path(str(options.get("project_dir") or ".")) / path
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{where}: ca_file '{path}' is not a readable PEM certificate file ({exc})."
        ) from None


def _key(secret: str, where: str) -> bytes:
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise ConfigError(f"{where}: a webhook secret must look like 'whsec_<base64>'.") from None
    if len(key) < 16:
        raise ConfigError(f"{where}: a webhook secret needs at least 16 bytes of key (24+ base64 chars).")
    return key


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` per key, space-separated.

    Examples
    --------
    >>> sign([b"0" * 24], "msg_1", 1700000000, b"{}")
    'v1,GyD6JYhOMw54HxxeJFT2MBccaZQKsuPluglVfnm25Bo='
    """
    signed = f"{msg_id}.{timestamp}.".encode() + body
    parts = [base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode() for k in keys]
    return " ".join(f"v1,{p}" for p in parts)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class WebhookAction:
    """POST each delivery's payload as signed JSON to ``url``."""

    kind: ClassVar[str] = "webhook"
    network_policy: ClassVar[bool] = True  # the dispatcher passes actions.allowed_hosts & co.
    thread_safe: ClassVar[bool] = True  # one httpx client serves concurrent sends

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        where = f"actions.endpoints.{name}"
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown webhook option '{unknown[0]}'; {did_you_mean(unknown[0], _OPTIONS)}"
            )
        self.url = self._url(options.get("url"), where)
        self.policy = NetworkPolicy.from_options(
            options.get("allowed_hosts") or (),
            options.get("allow_private", False),
            options.get("allow_loopback", False),
        )
        self.policy.check_host(self.url.host, where)
        self.keys = self._secrets(options, where)
        self.timeout = float(options.get("timeout_s", 10.0))
        self.headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        httpx = require("httpx", "webhook actions")
        verify = _tls_context() if not options.get("ca_file") else _ca_context(options, where)
        self._client: Any = httpx.Client(  # no connection yet; one is opened on the first send
            timeout=self.timeout, follow_redirects=False, trust_env=False, verify=verify
        )

    @staticmethod
    def _url(value: Any, where: str) -> Any:
        httpx = require("httpx", "webhook actions")
        if not value:
            raise ConfigError(f"{where}: missing 'url' (e.g. url: https://cases.example.com/hooks).")
        try:
            url = httpx.URL(str(value))
        except httpx.InvalidURL as exc:
            raise ConfigError(f"{where}: url '{value}' is not valid ({exc}).") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{where}: url '{value}' must be http:// or https:// with a host.")
        return url

    @staticmethod
    def _secrets(options: Mapping[str, Any], where: str) -> list[bytes]:
        text = options.get("secret")
        variable = options.get("secret_env")
        if variable:
            text = os.environ.get(str(variable))
            if not text:
                raise ConfigError(
                    f"{where}: environment variable {variable} (secret_env) is not set.",
                    hint=f"Set it to the receiver's secret, e.g. export {variable}=whsec_<base64 key>.",
                )
        if not text:
            raise ConfigError(f"{where}: a webhook needs a signing secret: set secret_env: VARIABLE_NAME.")
        return [_key(s, where) for s in str(text).split()]

    def _target(self) -> tuple[Any, dict[str, Any]]:
        """The URL with the host replaced by its checked address, and the request's TLS extension."""
        port = self.url.port or (443 if self.url.scheme == "https" else 80)
        try:
            address = self.policy.resolve(self.url.host, port)
        except Refused as exc:
            raise DeliveryError(f"refused: {exc}", permanent=True) from None
        except OSError as exc:
            raise DeliveryError(f"cannot resolve '{self.url.host}': {exc}", unreachable=True) from None
        extensions = {"sni_hostname": self.url.host} if self.url.scheme == "https" else {}
        return self.url.copy_with(host=address), extensions

    def send(self, delivery: Delivery) -> None:
        """POST the payload; raise :class:`DeliveryError` on anything but a 2xx answer."""
        httpx = require("httpx", "webhook actions")
        if self._client is None:
            raise DeliveryError(f"endpoint '{self.name}' was closed", permanent=True)
        body = json.dumps(dict(delivery.payload), separators=(",", ":"), default=str).encode()
        timestamp = int(time.time())
        headers = {
            **self.headers,
            **dict(delivery.headers),
            "host": self.url.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": "loopml-webhook/1",
            "webhook-id": delivery.key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.keys, delivery.key, timestamp, body),
        }
        url, extensions = self._target()
        try:
            response = self._client.post(url, content=body, headers=headers, extensions=extensions)
        except httpx.TransportError as exc:  # refused, reset, timed out: the receiver is not there
            raise DeliveryError(f"{type(exc).__name__}: {exc or 'no answer'}", unreachable=True) from None
        self._check(response)

    @staticmethod
    def _check(response: Any) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        what = f"HTTP {status}"
        if status == 410:
            raise DeliveryError(f"{what}: the receiver says this endpoint is gone", gone=True)
        if status in _RETRYABLE or status >= 500:
            raise DeliveryError(what, retry_after=parse_retry_after(response.headers.get("retry-after")))
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            raise DeliveryError(f"{what}: redirect to {where} not followed", permanent=True)
        raise DeliveryError(f"{what}: {response.text[:200]}", permanent=True)

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
