"""Rules: structured conditions over an event's fields, and payload templates. Nothing is ever evaluated.

An event is a flat view of a prediction (``score``, ``label``, ``inputs.<col>``, ``output.<key>``, ...)
or of an alert (``kind``, ``subject``, ``message``, ``details.<key>``, ...). A condition compares one
field with a literal (or with the model's cost-optimal threshold) using one of eight operators; a
template replaces ``{field}`` references with values, and nothing else.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from loopml.config import ActionRuleConfig, ConditionConfig

__all__ = ["alert_fields", "default_payload", "field_value", "matches", "prediction_fields", "render"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}
_REF = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
ThresholdOf = Callable[[str, int], float | None]


def prediction_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a prediction rule sees, from a row of the ``predictions`` table."""
    output = dict(row.get("output") or {})
    return {
        "score": row.get("score"),
        "label": output.get("label"),
        "model_name": row.get("model_name"),
        "model_version": row.get("model_version"),
        "prediction_id": row.get("id"),
        "origin": row.get("origin"),
        "created_at": row.get("created_at"),
        "inputs": dict(row.get("inputs") or {}),
        "output": output,
    }


def alert_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields an alert rule sees, from a row of the ``alerts`` table (with its ``id``)."""
    return {
        "kind": row.get("kind"),
        "subject": row.get("subject"),
        "message": row.get("message"),
        "model_name": row.get("model_name"),
        "alert_id": row.get("id"),
        "created_at": row.get("created_at"),
        "details": dict(row.get("details") or {}),
    }


def field_value(fields: Mapping[str, Any], name: str) -> Any:
    """``score`` or ``inputs.card_id``: the value, or None when absent."""
    head, _, rest = name.partition(".")
    value = fields.get(head)
    if rest:
        return value.get(rest) if isinstance(value, Mapping) else None
    return value


def _holds(condition: ConditionConfig, fields: Mapping[str, Any], threshold_of: ThresholdOf | None) -> bool:
    left = field_value(fields, condition.field)
    right = condition.value
    if condition.threshold is not None:
        name, version = fields.get("model_name"), fields.get("model_version")
        right = threshold_of(str(name), int(version)) if threshold_of and version is not None else None
        if right is None:
            return False  # no decision threshold recorded (not a binary model): the condition cannot hold
    if left is None and condition.op not in ("==", "!="):
        return False
    try:
        return bool(_OPS[condition.op](left, right))
    except TypeError:  # e.g. a text input compared with a number: the condition does not hold
        return False


def matches(
    rule: ActionRuleConfig, fields: Mapping[str, Any], threshold_of: ThresholdOf | None = None
) -> bool:
    """Whether every condition of ``rule`` holds for the event.

    Examples
    --------
    >>> from loopml.config import ActionRuleConfig
    >>> rule = ActionRuleConfig(name="r", endpoint="e", when=[{"field": "score", "op": ">=", "value": 0.5}])
    >>> matches(rule, {"score": 0.7}), matches(rule, {"score": 0.2})
    (True, False)
    """
    return all(_holds(c, fields, threshold_of) for c in rule.when)


def _jsonable(value: Any) -> Any:
    """A JSON-ready value. A whole float becomes an int, so that an id logged as 92397.0 (a batch
    frame's float column) and as 92397 (an API request) render, de-duplicate and key alike."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def render(template: Any, fields: Mapping[str, Any]) -> Any:
    """Fill ``{field}`` references in a template (a string, or dicts and lists of them).

    A string that is exactly one reference keeps the value's type; ``{{``/``}}`` are literal braces.

    Examples
    --------
    >>> render({"id": "{inputs.tx}", "note": "score {score}", "n": 3}, {"score": 0.9, "inputs": {"tx": 7}})
    {'id': 7, 'note': 'score 0.9', 'n': 3}
    """
    if isinstance(template, Mapping):
        return {str(k): render(v, fields) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, fields) for v in template]
    if not isinstance(template, str):
        return template
    whole = _REF.fullmatch(template)
    if whole and whole.group(1) is not None:
        return _jsonable(field_value(fields, whole.group(1)))

    def one(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        value = _jsonable(field_value(fields, match.group(1)))
        return "" if value is None else str(value)

    return _REF.sub(one, template)


def default_payload(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a rule without one: every field of the event, JSON-ready."""
    return {
        k: ({kk: _jsonable(vv) for kk, vv in v.items()} if isinstance(v, Mapping) else _jsonable(v))
        for k, v in fields.items()
    }
