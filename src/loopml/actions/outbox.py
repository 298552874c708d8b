"""The transactional outbox: actions are written in the same transaction as the event that caused them.

``enqueue_for_predictions(settings.actions)`` returns an ``on_write(connection, rows)`` hook for the
prediction log writer (API and batch); ``enqueue_for_alerts(settings.actions)`` the same for alerts. A hook
evaluates the rules, applies de-duplication windows and rate limits (an action held back by either is
kept as ``suppressed``, with the reason, for the audit trail) and inserts ``pending`` rows on the
caller's connection: if the transaction rolls back, neither the prediction nor its action exists.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from loopml._durations import duration
from loopml.actions.rules import alert_fields, default_payload, matches, prediction_fields, render
from loopml.config import ActionRuleConfig, ActionsConfig
from loopml.enums import ActionStatus
from loopml.store import tables, utcnow

__all__ = ["action_key", "enqueue", "enqueue_for_alerts", "enqueue_for_predictions"]

log = logging.getLogger(__name__)
OnWrite = Callable[[Connection, Sequence[dict[str, Any]]], None]


def action_key(event: str, source_id: str, rule: str) -> str:
    """The idempotency key of an action: the same for the same event and rule, on every retry."""
    digest = hashlib.sha256(f"{event}\0{source_id}\0{rule}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


class _Thresholds:
    """Each model version's decision threshold, read once (a version's threshold never changes)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], float | None] = {}

    def bind(self, connection: Connection) -> Callable[[str, int], float | None]:
        def threshold_of(name: str, version: int) -> float | None:
            if (name, version) not in self._known:
                mv = tables.model_versions
                signature = connection.execute(
                    select(mv.c.signature).where(mv.c.name == name, mv.c.version == version)
                ).scalar_one_or_none()
                value = (signature or {}).get("threshold")
                self._known[(name, version)] = None if value is None else float(value)
            return self._known[(name, version)]

        return threshold_of


class _Limits:
    """Rate-limit and de-duplication state of one enqueue call (the store holds the earlier calls)."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection, self.now = connection, now
        self.used: dict[str, int] = {}
        self.seen: set[tuple[str, str]] = set()

    def duplicate(self, rule: ActionRuleConfig, key: str) -> bool:
        assert rule.dedupe is not None
        if (rule.name, key) in self.seen:
            return True
        o = tables.action_outbox
        since = self.now - duration(rule.dedupe.window)
        found = self.connection.execute(
            select(o.c.id)
            .where(o.c.rule == rule.name, o.c.dedupe_key == key, o.c.status != ActionStatus.SUPPRESSED)
            .where(o.c.created_at >= since)
            .limit(1)
        ).first()
        self.seen.add((rule.name, key))
        return found is not None

    def over_limit(self, rule: ActionRuleConfig) -> bool:
        assert rule.rate_limit is not None
        if rule.name not in self.used:
            o = tables.action_outbox
            since = self.now - duration(rule.rate_limit.per)
            self.used[rule.name] = self.connection.execute(
                select(func.count())
                .select_from(o)
                .where(o.c.rule == rule.name, o.c.status != ActionStatus.SUPPRESSED, o.c.created_at >= since)
            ).scalar_one()
        if self.used[rule.name] >= rule.rate_limit.max:
            return True
        self.used[rule.name] += 1
        return False


def _row(
    config: ActionsConfig,
    rule: ActionRuleConfig,
    event: str,
    fields: Mapping[str, Any],
    limits: _Limits,
) -> dict[str, Any]:
    source_id = str(fields["prediction_id" if event == "prediction" else "alert_id"])
    dedupe_key = str(render(rule.dedupe.key, fields)) if rule.dedupe else None
    status, reason = ActionStatus.PENDING, None
    if dedupe_key is not None and limits.duplicate(rule, dedupe_key):
        status, reason = ActionStatus.SUPPRESSED, f"duplicate of '{dedupe_key}' within {rule.dedupe.window}"  # type: ignore[union-attr]
    elif rule.rate_limit is not None and limits.over_limit(rule):
        status, reason = (
            ActionStatus.SUPPRESSED,
            f"rate limit {rule.rate_limit.max} per {rule.rate_limit.per}",
        )
    payload = render(rule.payload, fields) if rule.payload else default_payload(fields)
    return {
        "key": action_key(event, source_id, rule.name),
        "event": event,
        "source_id": source_id,
        "rule": rule.name,
        "endpoint": rule.endpoint,
        "kind": config.endpoints[rule.endpoint].kind,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "status": status,
        "attempts": 0,
        "next_attempt_at": limits.now,
        "last_error": reason,
        "created_at": limits.now,
    }


def _serialize(connection: Connection, rules: Sequence[ActionRuleConfig]) -> None:
    """On PostgreSQL, hold a transaction lock per rule with a dedupe window or a rate limit, so that
    API replicas writing at once cannot both see "not sent yet" (SQLite has one writer anyway)."""
    if connection.dialect.name != "postgresql":
        return
    for rule in sorted(r.name for r in rules if r.dedupe or r.rate_limit):
        lock = int.from_bytes(
            hashlib.sha256(f"loopml.actions:{rule}".encode()).digest()[:8], "big", signed=True
        )
        connection.execute(select(func.pg_advisory_xact_lock(lock)))


def enqueue(
    connection: Connection,
    config: ActionsConfig,
    event: str,
    events: Sequence[Mapping[str, Any]],
    threshold_of: Callable[[str, int], float | None] | None = None,
) -> int:
    """Evaluate ``config``'s rules for ``event`` over ``events`` (field views) and insert the actions.

    Runs on the caller's connection, inside its transaction. Returns how many actions are pending.
    """
    rules = [r for r in config.rules if r.event == event]
    if not rules or not events:
        return 0
    _serialize(connection, rules)
    limits = _Limits(connection, utcnow())
    rows = [
        _row(config, rule, event, fields, limits)
        for fields in events
        for rule in rules
        if matches(rule, fields, threshold_of)
    ]
    if rows:
        connection.execute(insert(tables.action_outbox), rows)
    return sum(r["status"] == ActionStatus.PENDING for r in rows)


def enqueue_for_predictions(config: ActionsConfig) -> OnWrite | None:
    """The prediction log's ``on_write`` hook for the project's prediction rules (None: no rules).

    Examples
    --------
    >>> from loopml.config import ActionsConfig
    >>> enqueue_for_predictions(ActionsConfig()) is None
    True
    """
    if not any(r.event == "prediction" for r in config.rules):
        return None
    thresholds = _Thresholds()

    def on_write(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        events = [prediction_fields(row) for row in rows]
        enqueue(connection, config, "prediction", events, thresholds.bind(connection))

    return on_write


def enqueue_for_alerts(config: ActionsConfig) -> OnWrite | None:
    """The ``on_write`` hook for recorded alerts (rows of ``alerts`` with their ``id``); None: no rules."""
    if not any(r.event == "alert" for r in config.rules):
        return None

    def on_write(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        enqueue(connection, config, "alert", [alert_fields(row) for row in rows])

    return on_write
