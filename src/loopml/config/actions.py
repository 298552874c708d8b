"""The actions section of the project file: endpoints, rules, conditions, dedupe and rate limits."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from loopml._durations import parse_duration
from loopml.config._base import (
    Duration,
    _Frozen,
)
from loopml.errors import did_you_mean

DEFAULT_RETRY_SCHEDULE = ("5s", "5m", "30m", "2h", "5h", "10h", "10h")  # as webhook services retry
Seconds = Annotated[float, Field(ge=0)] | Duration  # 300 or "5m"


def seconds(value: float | str) -> float:
    """A delay written as seconds (``300``) or as a duration (``"5m"``), in seconds.

    >>> seconds("5m"), seconds(0.5)
    (300.0, 0.5)
    """
    return float(value) if isinstance(value, int | float) else parse_duration(value) / 1000.0


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

    field: str = Field(
        ..., min_length=1, description="score, label, inputs.<column>, ...", examples=["score"]
    )
    op: ConditionOp = Field("==", description="Comparison of the field with the value.")
    value: Any = Field(None, description="Operand (a list for in and not_in).", examples=[0.9])
    threshold: Literal["cost_optimal"] | None = Field(
        None, description="Compare with the version's cost-optimal threshold instead of a value."
    )

    @model_validator(mode="after")
    def _operand(self) -> ConditionConfig:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' needs a list as value, got {self.value!r}")
        if self.threshold is not None and self.op in ("in", "not_in"):
            raise ValueError("a threshold condition needs a comparison op (>=, >, <, <=, ==, !=)")
        return self


class DedupeConfig(_Frozen):
    """At most one action per rendered ``key`` within ``window`` (later ones are kept as suppressed)."""

    key: str = Field(
        ..., min_length=1, description="Template, e.g. '{inputs.card_id}'.", examples=["{inputs.card_id}"]
    )
    window: Duration = Field("1h", description="e.g. 10m, 1h, 1d.")


class RateLimitConfig(_Frozen):
    """At most ``max`` actions of the rule per ``per`` (the excess is recorded as suppressed)."""

    max: int = Field(..., ge=1, description="Most actions per period.", examples=[500])
    per: Duration = Field("1m", description="e.g. 1s, 1m, 1h.")


class ActionRuleConfig(_Frozen):
    """When a prediction (or an alert) matches every condition in ``when``, send ``payload`` to ``endpoint``.

    Payload strings are templates with field references only (``"{inputs.card_id}"``; a string that
    is one reference keeps the value's type); ``{{`` and ``}}`` are literal braces.
    """

    name: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Unique rule name.",
        examples=["open-case"],
    )
    event: Literal["prediction", "alert"] = Field("prediction", description="What the rule reacts to.")
    when: list[ConditionConfig] = Field(
        default_factory=list,
        description="All must hold; empty: always.",
        examples=[[{"field": "score", "op": ">=", "value": 0.9}]],
    )
    endpoint: str = Field(..., description="Name of an endpoint under actions.endpoints.", examples=["cases"])
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description="Default: every field of the event.",
        examples=[{"transaction_id": "{inputs.transaction_id}", "score": "{score}"}],
    )
    dedupe: DedupeConfig | None = Field(
        None,
        description="At most one action per key and window.",
        examples=[{"key": "{inputs.transaction_id}", "window": "1d"}],
    )
    rate_limit: RateLimitConfig | None = Field(
        None, description="At most max actions per period.", examples=[{"max": 500, "per": "1h"}]
    )

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

    kind: str = Field(
        ..., description="webhook, sql, redis, rabbitmq, nats, log, or a plugin.", examples=["webhook"]
    )

    @property
    def options(self) -> dict[str, Any]:
        """The plugin's options: every key but ``kind``."""
        return dict(self.model_extra or {})


class ActionsConfig(_Frozen):
    """Predictions and alerts that trigger actions in other systems, through a transactional outbox."""

    endpoints: dict[str, EndpointConfig] = Field(
        default_factory=dict,
        description="Per endpoint name: where its actions go (a plugin and its options).",
        examples=[
            {
                "cases": {
                    "kind": "webhook",
                    "url": "https://cases.example.com/hooks/loopml",
                    "secret_env": "CASES_SECRET",
                }
            }
        ],
    )
    rules: list[ActionRuleConfig] = Field(
        default_factory=list,
        description="When to send what where.",
        examples=[
            [
                {
                    "name": "open-case",
                    "when": [{"field": "score", "op": ">=", "threshold": "cost_optimal"}],
                    "endpoint": "cases",
                }
            ]
        ],
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Webhook hosts allowed: names, '*.example.com', IPs or CIDRs (IPs/CIDRs also permit "
        "those private addresses).",
        examples=[["cases.example.com", "*.internal.example.com"]],
    )
    allow_private: bool = Field(False, description="Allow private (10/8, 172.16/12, 192.168/16, fc00::/7).")
    allow_loopback: bool = Field(False, description="Allow 127.0.0.0/8 and ::1 (local development only).")
    retry_schedule: list[Seconds] = Field(
        default_factory=lambda: list[float | str](DEFAULT_RETRY_SCHEDULE),
        min_length=1,
        description="Delays between attempts after an immediate first one (durations like 5m, or seconds). "
        "While an endpoint fails, one probe action at a time is tried on this schedule and the endpoint's "
        "other actions wait without spending attempts. An action is dead only once its endpoint has "
        "kept failing for the sum (the retry horizon: 27 h 35 min by default) and it is that old, or at "
        "once on a permanent error.",
    )
    backoff_s: float | None = Field(
        None,
        gt=0,
        description="Instead of retry_schedule: the first retry delay in seconds, doubling each attempt "
        "up to max_backoff_s; the retry horizon is then retry_horizon.",
    )
    max_backoff_s: float = Field(36000.0, gt=0, description="Longest delay between two attempts (backoff_s).")
    retry_horizon: Seconds = Field(
        "24h", description="With backoff_s: how long an undeliverable action is retried before it is dead."
    )
    down_alert_after: Seconds = Field(
        "5m",
        description="An endpoint failing for this long raises an endpoint_down alert (once per outage).",
    )
    lease_s: float = Field(60.0, gt=0, description="Seconds a claim lasts before another worker may retry.")
    batch: int = Field(100, ge=1, description="Actions a dispatcher claims at a time.")
    concurrency: int = Field(4, ge=1, le=64, description="Sends in flight at once (thread-safe plugins).")
    interval_s: float = Field(1.0, gt=0, description="How often `loopml worker` looks for due actions.")

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_attempts" in data:
            raise ValueError(
                "max_attempts was replaced by retry_schedule: an action is retried for the whole schedule "
                "(27 h 35 min by default); remove max_attempts, or shorten retry_schedule"
            )
        return data

    @model_validator(mode="after")
    def _one_retry_form(self) -> ActionsConfig:
        if self.backoff_s is not None and "retry_schedule" in self.model_fields_set:
            raise ValueError("set either retry_schedule or backoff_s (with max_backoff_s and retry_horizon)")
        return self

    def retry_delay(self, failures: int) -> float:
        """Seconds before the next attempt after ``failures`` consecutive failures (1 = the first).

        Examples
        --------
        >>> config = ActionsConfig()
        >>> [config.retry_delay(n) for n in (1, 2, 7, 8)]
        [5.0, 300.0, 36000.0, 36000.0]
        """
        n = max(failures, 1)
        if self.backoff_s is not None:
            return min(self.max_backoff_s, self.backoff_s * 2.0 ** min(n - 1, 60))
        return seconds(self.retry_schedule[min(n, len(self.retry_schedule)) - 1])

    @property
    def max_delay_s(self) -> float:
        """The longest wait between two attempts."""
        if self.backoff_s is not None:
            return self.max_backoff_s
        return max(seconds(d) for d in self.retry_schedule)

    @property
    def retry_horizon_s(self) -> float:
        """How long an action whose endpoint keeps failing is retried before it is dead (seconds).

        >>> ActionsConfig().retry_horizon_s / 3600
        27.584722222222222
        """
        if self.backoff_s is not None:
            return seconds(self.retry_horizon)
        return sum(seconds(d) for d in self.retry_schedule)

    @property
    def down_alert_after_s(self) -> float:
        """Seconds an endpoint fails before its ``endpoint_down`` alert."""
        return seconds(self.down_alert_after)

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
