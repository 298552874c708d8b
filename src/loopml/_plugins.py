"""Plugin registries: a short name maps to ``"module:attr"``, resolved when used.

Built-in plugins and third-party ones use the same mechanism: built-ins are listed here, third
parties add theirs through the entry-point group ``loopml.<kind>`` in their package metadata.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from loopml.errors import ConfigError, did_you_mean

__all__ = ["BUILTINS", "available", "load_object", "resolve"]

BUILTINS: dict[str, dict[str, str]] = {
    "sources": {
        "csv": "loopml.sources.files:CsvSource",
        "parquet": "loopml.sources.files:ParquetSource",
        "sql": "loopml.sources.sql:SqlSource",
    },
    "actions": {
        "webhook": "loopml.actions.webhook:WebhookAction",
        "sql": "loopml.actions.sql:SqlAction",
        "redis": "loopml.actions.redis_stream:RedisStreamAction",
        "rabbitmq": "loopml.actions.rabbitmq:RabbitMQAction",
        "nats": "loopml.actions.nats:NatsAction",
        "log": "loopml.actions.log:LogAction",
    },
    "examples": {
        "fraud": "loopml.examples.fraud:EXAMPLE",
        "retail": "loopml.examples.retail:EXAMPLE",
        "maintenance": "loopml.examples.maintenance:EXAMPLE",
        "forecast": "loopml.examples.forecast:EXAMPLE",
        "recommend": "loopml.examples.recommend:EXAMPLE",
    },
}


@cache
def _entry_point_names(kind: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=f"loopml.{kind}")}


def available(kind: str) -> dict[str, str]:
    """Every plugin of ``kind``: built-ins first, then entry points (which may not shadow them)."""
    return {**_entry_point_names(kind), **BUILTINS.get(kind, {})}


def load_object(spec: str, *, what: str = "object") -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} '{spec}' is not of the form 'package.module:Name'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} '{spec}': cannot import module '{module_name}' ({exc}).") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"{what} '{spec}': module '{module_name}' has no attribute '{attr}'; {did_you_mean(attr, names)}"
        ) from None


def resolve(kind: str, name: str) -> Any:
    """Return the plugin object registered as ``name`` for ``kind``."""
    registry = available(kind)
    if name not in registry:
        suggestion = did_you_mean(name, registry) or f"no {kind[:-1]} plugins are installed"
        raise ConfigError(f"unknown {kind[:-1]} kind '{name}'; {suggestion}")
    return load_object(registry[name], what=f"{kind[:-1]} plugin '{name}'")
