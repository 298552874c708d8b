"""Actions: predictions and alerts that trigger work in other systems, with nothing lost.

Rules in ``loopml.yaml`` (``actions:``) match predictions or alerts with structured conditions; a
matching event becomes an action row in the transactional outbox, written in the same transaction as
the event; :func:`run_dispatcher` (in ``loopml worker``) delivers each action at least once through an
action plugin (entry-point group ``loopml.actions``): ``webhook`` (signed per Standard Webhooks),
``sql``, ``redis_stream``, ``rabbitmq``, ``nats`` and ``log``. Plugins are resolved by name when used
(see :func:`plugin`), so importing this package imports none of their client libraries.
"""

from __future__ import annotations

from typing import Any

from loopml._plugins import available, resolve
from loopml.actions.base import Action, Delivery, DeliveryError
from loopml.actions.dispatch import Dispatcher, backoff_delay, dispatch_once, open_action, run_dispatcher
from loopml.actions.outbox import action_key, enqueue, enqueue_for_alerts, enqueue_for_predictions
from loopml.actions.status import (
    STATUSES,
    OutboxBacklog,
    action_summary,
    outbox_backlog,
    recent_actions,
    replay,
)

__all__ = [
    "STATUSES",
    "Action",
    "Delivery",
    "DeliveryError",
    "Dispatcher",
    "OutboxBacklog",
    "action_key",
    "action_summary",
    "backoff_delay",
    "dispatch_once",
    "enqueue",
    "enqueue_for_alerts",
    "enqueue_for_predictions",
    "open_action",
    "outbox_backlog",
    "plugin",
    "plugins",
    "recent_actions",
    "replay",
    "run_dispatcher",
]


def plugins() -> dict[str, str]:
    """Every action plugin: short name -> ``"module:Class"`` (built-ins and entry points)."""
    return available("actions")


def plugin(kind: str) -> Any:
    """The action plugin class registered as ``kind`` (imported now, not before)."""
    return resolve("actions", kind)
