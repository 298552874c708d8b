"""The actions section of the project file: endpoints, rules, conditions, dedupe and rate limits."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from loopml.config._base import (
    Duration,
    _Frozen,
)
from loopml.errors import did_you_mean

ConditionOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in"]
_PREDICTION_FIELDS = (
    "score", "label", "model_name", "model_version", "prediction_id", "origin", "created_at",
)  # fmt: skip
_ALERT_FIELDS = ("kind", "subject", "message", "model_name", "alert_id", "created_at")
_NESTED = {"prediction": ("inputs", "output"), "alert": ("details",)}
_TEMPLATE_REF = re.compile(r"\{([^{}]*)\}")


def action_fields(event: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plain fields and the nested prefixes (``inputs.<col>``) a rule on ``event`` may use."""
    return (_PREDICTION_FIELDS if event == "prediction" else _ALERT_FIELDS), _NESTED[event]


def _check_field(name: str, event: str, where: str) -> None:
    plain, nested = action_fields(event)
    head, dot, rest = name.partition(".")
    if (not dot and name in plain) or (dot and head in nested and rest):
        return
    choices = [*plain, *(f"{p}.<name>" for p in nested)]
    raise ValueError(f"{where}: unknown {event} field '{name}'; {did_you_mean(name, choices)}")


class ConditionConfig(_Frozen):
    """One condition of a rule: ``{field: score, op: ">=", value: 0.5}``.

    Structured data, never evaluated as code. ``threshold: cost_optimal`` instead of ``value``
    compares with the model version's decision threshold (chosen at training to minimise cost).
    """

    field: str = Field(..., min_length=1)
    op: ConditionOp = "=="
    value: Any = None
    threshold: Literal["cost_optimal"] | None = None

    @model_validator(mode="after")
    def _operand(self) -> ConditionConfig:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' needs a list as value, got {self.value!r}")
        if self.threshold is not None and self.op in ("in", "not_in"):
            raise ValueError("a threshold condition needs a comparison op (>=, >, <, <=, ==, !=)")
        return self


class DedupeConfig(_Frozen):
    """At most one action per rendered ``key`` within ``window`` (later ones are kept as suppressed)."""

    key: str = Field(..., min_length=1, description="Template, e.g. '{inputs.card_id}'.")
    window: Duration = Field("1h", description="e.g. 10m, 1h, 1d.")


class RateLimitConfig(_Frozen):
    """At most ``max`` actions of the rule per ``per`` (the excess is recorded as suppressed)."""

    max: int = Field(..., ge=1)
    per: Duration = Field("1m", description="e.g. 1s, 1m, 1h.")


class ActionRuleConfig(_Frozen):
    """When a prediction (or an alert) matches every condition in ``when``, send ``payload`` to ``endpoint``.

    Payload strings are templates with field references only (``"{inputs.card_id}"``; a string that
    is one reference keeps the value's type); ``{{`` and ``}}`` are literal braces.
    """

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    event: Literal["prediction", "alert"] = "prediction"
    when: list[ConditionConfig] = Field(default_factory=list, description="All must hold; empty: always.")
    endpoint: str
    payload: dict[str, Any] = Field(default_factory=dict, description="Default: every field of the event.")
    dedupe: DedupeConfig | None = None
    rate_limit: RateLimitConfig | None = None

    @model_validator(mode="after")
    def _fields(self) -> ActionRuleConfig:
        where = f"rule '{self.name}'"
        for condition in self.when:
            _check_field(condition.field, self.event, where)
        for template in _templates(self.payload) + ([self.dedupe.key] if self.dedupe else []):
            for ref in _TEMPLATE_REF.findall(template.replace("{{", "").replace("}}", "")):
                _check_field(ref, self.event, where)
        return self


def _templates(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _templates(v)]
    if isinstance(value, list):
        return [t for v in value for t in _templates(v)]
    return []


class EndpointConfig(BaseModel):
    """Where actions go: ``kind`` names the plugin; every other key is that plugin's option."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str = Field(..., description="webhook, sql, redis, rabbitmq, nats, log, or a plugin.")

    @property
    def options(self) -> dict[str, Any]:
        """The plugin's options: every key but ``kind``."""
        return dict(self.model_extra or {})


class ActionsConfig(_Frozen):
    """Predictions and alerts that trigger actions in other systems, through a transactional outbox."""

    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    rules: list[ActionRuleConfig] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Webhook hosts allowed: names, '*.example.com', IPs or CIDRs (IPs/CIDRs also permit "
        "those private addresses).",
    )
    allow_private: bool = Field(False, description="Allow private (10/8, 172.16/12, 192.168/16, fc00::/7).")
    allow_loopback: bool = Field(False, description="Allow 127.0.0.0/8 and ::1 (local development only).")
    max_attempts: int = Field(8, ge=1, description="Attempts before an action is dead (see actions replay).")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each attempt (full jitter).")
    max_backoff_s: float = Field(600.0, gt=0, description="Longest delay between two attempts.")
    lease_s: float = Field(60.0, gt=0, description="Seconds a claim lasts before another worker may retry.")
    batch: int = Field(100, ge=1, description="Actions a dispatcher claims at a time.")
    concurrency: int = Field(4, ge=1, le=64, description="Sends in flight at once (thread-safe plugins).")
    interval_s: float = Field(1.0, gt=0, description="How often `loopml worker` looks for due actions.")

    @model_validator(mode="after")
    def _references(self) -> ActionsConfig:
        names = [rule.name for rule in self.rules]
        for rule in self.rules:
            if rule.endpoint not in self.endpoints:
                raise ValueError(
                    f"rule '{rule.name}' sends to unknown endpoint '{rule.endpoint}'; "
                    f"{did_you_mean(rule.endpoint, self.endpoints) or 'define it under actions.endpoints'}"
                )
            if names.count(rule.name) > 1:
                raise ValueError(f"two rules are named '{rule.name}'; rule names must be unique")
        return self
