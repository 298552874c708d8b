"""The ``rabbitmq`` action: each delivery is a persistent message, confirmed by the broker.

Options (``actions.endpoints.<name>`` in ``loopml.yaml``)::

    cases: {kind: rabbitmq, url: "amqp://guest:guest@127.0.0.1:5672/%2F", exchange: loopml,
            exchange_type: topic, routing_key: cases.open, queue: case-intake}

- ``url`` (required): ``amqp://`` or ``amqps://``; the password may come from the environment
  variable named by ``password_env`` instead of the URL.
- ``exchange``: where messages are published (default ``""``, the default exchange, which routes by
  queue name); ``exchange_type``: direct (default), fanout, topic or headers.
- ``routing_key``: defaults to ``queue``; ``queue``: a durable queue declared and bound to the
  exchange with the routing key; ``queue_arguments``: e.g. ``{x-queue-type: quorum}``.
- ``declare``: declare the exchange and queue (durable) when connecting (default true).
- ``timeout_s``: connect, socket and blocked-connection timeouts (default 10).

Each message: body = the payload as JSON; ``message_id`` = the idempotency key (consumers de-duplicate
on it: RabbitMQ itself does not), ``delivery_mode`` 2 (persistent), ``content_type``
``application/json``, ``type`` = the rule, ``timestamp`` = when the action was created, and the
headers ``loopml-endpoint``, ``loopml-rule``, ``loopml-attempt``. ``send`` returns only after the
broker confirmed the message (publisher confirms) and it was routed to at least one queue
(``mandatory``); an unroutable or refused message is a retryable failure.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from loopml._optional import require
from loopml.actions._options import Options, one_line
from loopml.actions.base import Delivery, DeliveryError

__all__ = ["RabbitMQAction"]

_OPTIONS = (
    "url",
    "exchange",
    "exchange_type",
    "routing_key",
    "queue",
    "queue_arguments",
    "declare",
    "timeout_s",
    "password_env",
)
_TYPES = ("direct", "fanout", "topic", "headers")


class RabbitMQAction:
    """Publish each delivery to an exchange with publisher confirms and ``message_id`` = key."""

    kind: ClassVar[str] = "rabbitmq"
    thread_safe: ClassVar[bool] = False  # a pika BlockingConnection belongs to one thread at a time

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        opts = Options(self.kind, name, options, _OPTIONS)
        self.name = name
        self.url = str(opts.text("url", example="amqp://guest:guest@127.0.0.1:5672/%2F"))
        if not self.url.startswith(("amqp://", "amqps://")):
            raise opts.error("url", f"must start with amqp:// or amqps://, got '{self.url}'")
        self.exchange = str(opts.raw.get("exchange") or "")
        self.exchange_type = opts.choice("exchange_type", _TYPES, "direct")
        self.queue = opts.text("queue", None, example="case-intake")
        self.routing_key = str(opts.text("routing_key", None) or self.queue or "")
        if not self.exchange and not self.routing_key:
            raise opts.error("queue", "is needed with the default exchange (or set exchange: NAME)")
        self.queue_arguments = opts.mapping("queue_arguments")
        self.declare = opts.flag("declare", True)
        self.timeout = float(opts.number("timeout_s", 10.0, minimum=0.1))
        self.password = opts.env_secret("password_env")
        self._parameters = self._url_parameters(opts)
        self._connection: Any = None
        self._channel: Any = None
        self._pid = 0

    def _url_parameters(self, opts: Options) -> Any:
        pika = require("pika", "RabbitMQ actions")
        try:
            parameters = pika.URLParameters(self.url)
        except Exception as exc:  # pika raises ValueError, TypeError or AMQPError on a bad URL
            raise opts.error("url", f"is not a valid AMQP URL ({one_line(exc)})") from None
        parameters.socket_timeout = self.timeout
        parameters.stack_timeout = self.timeout
        parameters.blocked_connection_timeout = self.timeout
        parameters.connection_attempts = 1
        if self.password:
            parameters.credentials = pika.PlainCredentials(parameters.credentials.username, self.password)
        return parameters

    @property
    def where(self) -> str:
        return f"rabbitmq exchange '{self.exchange or '(default)'}' key '{self.routing_key}'"

    def _open(self) -> Any:
        if self._channel is not None and self._pid == os.getpid() and self._channel.is_open:
            return self._channel
        if self._pid != os.getpid():  # a forked child must not touch its parent's socket
            self._connection = self._channel = None
        self._drop()
        pika = require("pika", "RabbitMQ actions")
        self._pid = os.getpid()
        self._connection = pika.BlockingConnection(self._parameters)
        channel = self._connection.channel()
        channel.confirm_delivery()
        if self.declare and self.exchange and not self.exchange.startswith("amq."):  # amq.* always exist
            channel.exchange_declare(self.exchange, self.exchange_type, durable=True)
        if self.declare and self.queue:
            channel.queue_declare(self.queue, durable=True, arguments=self.queue_arguments or None)
            if self.exchange:
                channel.queue_bind(self.queue, self.exchange, routing_key=self.routing_key)
        self._channel = channel
        return channel

    def _properties(self, delivery: Delivery) -> Any:
        pika = require("pika", "RabbitMQ actions")
        headers = {
            "loopml-endpoint": delivery.endpoint,
            "loopml-rule": delivery.rule,
            "loopml-attempt": delivery.attempt,
        }
        return pika.BasicProperties(
            message_id=delivery.key,
            delivery_mode=2,
            content_type="application/json",
            type=delivery.rule,
            app_id="loopml",
            timestamp=int(delivery.created_at.timestamp()),
            headers={**dict(delivery.headers), **headers},
        )

    def _publish(self, delivery: Delivery) -> None:
        channel = self._open()
        body = json.dumps(dict(delivery.payload), separators=(",", ":"), default=str).encode()
        channel.basic_publish(
            self.exchange, self.routing_key, body, self._properties(delivery), mandatory=True
        )

    def send(self, delivery: Delivery) -> None:
        """Publish and wait for the broker's confirm; raise :class:`DeliveryError` on failure."""
        pika = require("pika", "RabbitMQ actions")
        errors = pika.exceptions
        reused = self._channel is not None
        try:
            try:
                self._publish(delivery)
            except (errors.StreamLostError, errors.ConnectionClosed, errors.ChannelWrongStateError):
                if not reused:
                    raise
                self._drop()  # an idle connection the broker dropped: reconnect once, now
                self._publish(delivery)
        except (errors.AMQPError, OSError) as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: BaseException) -> DeliveryError:
        """The DeliveryError for a pika failure: refusals and lost connections are retried; a login,
        permission or declaration (type clash) the broker refuses is permanent."""
        errors = require("pika", "RabbitMQ actions").exceptions
        if isinstance(exc, errors.UnroutableError | errors.NackError):
            what = (
                "no queue is bound for it" if isinstance(exc, errors.UnroutableError) else "broker refused it"
            )
            return DeliveryError(f"{self.where}: message not accepted: {what}")
        self._drop()
        if isinstance(exc, OSError):
            return DeliveryError(f"{self.where}: {one_line(exc)}", unreachable=True)
        refused = (
            errors.ProbableAuthenticationError
            | errors.ProbableAccessDeniedError
            | errors.ChannelClosedByBroker
        )
        reason = " ".join(one_line(a) if isinstance(a, BaseException) else str(a) for a in exc.args)
        down = isinstance(exc, errors.AMQPConnectionError)  # refused, lost, timed out (or a refused login)
        message = f"{self.where}: {type(exc).__name__}: {reason}"
        return DeliveryError(message, permanent=isinstance(exc, refused), unreachable=down)

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        if self._pid == os.getpid():
            self._drop()
        self._connection = self._channel = None
