"""The plugin seam for actions: where a prediction's consequence is delivered.

An action plugin (entry-point group ``loopml.actions``, built-ins in ``loopml._plugins.BUILTINS``)
is a class constructed from its endpoint's options and delivering one :class:`Delivery` at a time.
The dispatcher owns retries, backoff, dead-lettering and idempotency bookkeeping; a plugin only
sends, and says through :class:`DeliveryError` whether a failure is worth retrying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = ["Action", "Delivery", "DeliveryError"]


@dataclass(frozen=True)
class Delivery:
    """One action to deliver: ``key`` is its idempotency key, stable across every retry."""

    key: str
    endpoint: str
    rule: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempt: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """A delivery failed. ``retry_after`` (seconds) is honoured by the dispatcher; ``permanent``
    failures go straight to the dead-letter state; ``gone`` (HTTP 410) also disables the endpoint;
    ``unreachable`` says the endpoint itself is not there (connection refused, DNS failure, timeout).
    Any failure that is not permanent takes the endpoint down: its other actions wait, without an
    attempt, while one probe at a time is retried (:mod:`loopml.actions.breaker`)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        gone: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent or gone
        self.gone = gone
        self.unreachable = unreachable and not self.permanent


@runtime_checkable
class Action(Protocol):
    """Delivers payloads to one configured endpoint.

    ``__init__(self, name: str, options: Mapping[str, Any])`` validates the options (a bad option is
    a :class:`~loopml.errors.ConfigError` naming the endpoint and key) and opens nothing yet.
    ``send`` must be idempotent per ``delivery.key`` where the target allows it (an upsert, a
    message id, an ``webhook-id`` header), because delivery is at least once.
    """

    kind: ClassVar[str]

    def send(self, delivery: Delivery) -> None:
        """Deliver one payload, or raise :class:`DeliveryError`."""
        ...

    def close(self) -> None:
        """Release connections; the object is not used afterwards."""
        ...
