"""The dispatcher: claims due actions from the outbox, sends them, records every attempt.

At least once: an action is marked delivered only after its plugin's ``send`` returned, so a crash
between the two sends it again later, with the same idempotency key (receivers de-duplicate on it).
Claims are leases: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` on PostgreSQL (so
any number of workers share the outbox without waiting on each other), the same statement under
SQLite's single writer; a worker that dies leaves its claims to expire after ``actions.lease_s``.
A failure is retried after an exponential backoff with full jitter (never sooner than the receiver's
``Retry-After``); after ``actions.max_attempts`` attempts, or on a permanent failure, the action is
dead (``loopml actions replay`` re-queues it). HTTP 410 also disables its endpoint until a replay.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, bindparam, insert, or_, select, update

from loopml._plugins import resolve
from loopml.actions.base import Action, Delivery, DeliveryError
from loopml.config import ActionsConfig, Settings
from loopml.enums import ActionStatus
from loopml.errors import LoopMLError
from loopml.store import tables, utcnow

__all__ = ["Dispatcher", "backoff_delay", "dispatch_once", "open_action", "run_dispatcher"]

log = logging.getLogger(__name__)
AfterSend = Callable[[Delivery], None]
_FLUSH = 50  # attempts whose outcomes are written in one transaction


def backoff_delay(attempt: int, config: ActionsConfig, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: full jitter over ``backoff_s * 2**(attempt-1)`` (capped),
    and never less than ``retry_after``."""
    ceiling = min(config.max_backoff_s, config.backoff_s * 2 ** min(attempt - 1, 60))
    delay = random.uniform(0.0, ceiling)
    return max(delay, retry_after) if retry_after is not None else delay


def open_action(name: str, config: ActionsConfig, project_dir: Path | None = None) -> Action:
    """Construct the plugin of endpoint ``name`` (a :class:`ConfigError` names what is wrong).

    Plugins get the endpoint's options plus ``project_dir`` (where relative paths start) and, when
    they declare ``network_policy``, ``actions.allowed_hosts``, ``allow_private`` and ``allow_loopback``.
    """
    endpoint = config.endpoints[name]
    cls = resolve("actions", endpoint.kind)
    options = {**endpoint.options, "project_dir": str(project_dir or Path.cwd())}
    if getattr(cls, "network_policy", False):
        options = {
            "allowed_hosts": list(config.allowed_hosts),
            "allow_private": config.allow_private,
            "allow_loopback": config.allow_loopback,
            **options,
        }
    action: Action = cls(name, options)
    return action


@dataclass
class _Attempt:
    row: Row[Any]
    result: _Outcome
    started: datetime
    seconds: float


@dataclass
class _Outcome:
    status: ActionStatus  # delivered | pending | dead
    outcome: str  # delivered | retry | dead | gone
    error: str | None = None
    retry_after: float | None = None
    delay: float = 0.0  # seconds until the next attempt (pending only)
    unreachable: bool = False


class Dispatcher:
    """Delivers due actions of one project; one per worker thread (it holds plugin connections)."""

    def __init__(
        self,
        engine: Engine,
        config: ActionsConfig,
        *,
        actions: Mapping[str, Action] | None = None,
        after_send: AfterSend | None = None,
        project_dir: Path | None = None,
    ) -> None:
        self.engine, self.config, self.after_send = engine, config, after_send
        self.project_dir = project_dir
        self._actions: dict[str, Action] = dict(actions or {})
        self._broken: dict[str, str] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _action(self, name: str) -> Action | None:
        if name not in self._actions and name not in self._broken:
            try:
                self._actions[name] = open_action(name, self.config, self.project_dir)
            except LoopMLError as exc:  # e.g. a missing secret: keep its actions pending, say why once
                self._broken[name] = str(exc)
                log.error("actions for endpoint '%s' are held: %s", name, exc)
        return self._actions.get(name)

    def _usable(self) -> list[str]:
        e = tables.action_endpoints
        with self.engine.connect() as conn:
            disabled = set(conn.execute(select(e.c.name).where(e.c.disabled.is_(True))).scalars())
        return [n for n in self.config.endpoints if n not in disabled and self._action(n) is not None]

    def claim(self, limit: int | None = None) -> tuple[str, list[Row[Any]]]:
        """Lease up to ``limit`` due actions of usable endpoints: ``(claim token, rows)``."""
        o = tables.action_outbox
        token, now = uuid.uuid4().hex, utcnow()
        endpoints = self._usable()
        if not endpoints:
            return token, []
        due = (
            select(o.c.id)
            .where(
                o.c.status == ActionStatus.PENDING, o.c.next_attempt_at <= now, o.c.endpoint.in_(endpoints)
            )
            .where(or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))
            .order_by(o.c.next_attempt_at, o.c.id)
            .limit(limit or self.config.batch)
            .with_for_update(skip_locked=True)
        )
        lease = now + timedelta(seconds=self.config.lease_s)
        with self.engine.begin() as conn:
            conn.execute(
                update(o)
                .where(o.c.id.in_(due.scalar_subquery()))
                .values(claim_token=token, claimed_until=lease)
            )
            rows = conn.execute(select(o).where(o.c.claim_token == token).order_by(o.c.id)).all()
        return token, list(rows)

    def _send(self, row: Row[Any]) -> _Outcome:
        action = self._actions[row.endpoint]
        attempt = row.attempts + 1
        delivery = Delivery(row.key, row.endpoint, row.rule, row.payload, row.created_at, attempt)
        try:
            action.send(delivery)
        except DeliveryError as exc:
            message = str(exc)[:1000]
            if exc.gone:
                return _Outcome(ActionStatus.DEAD, "gone", message)
            if exc.permanent or attempt >= self.config.max_attempts:
                return _Outcome(ActionStatus.DEAD, "dead", message, exc.retry_after)
            delay = backoff_delay(attempt, self.config, exc.retry_after)
            return _Outcome(ActionStatus.PENDING, "retry", message, exc.retry_after, delay, exc.unreachable)
        except Exception as exc:  # a plugin bug must not stop the dispatcher: retry, keep it visible
            log.exception("endpoint '%s' raised while sending %s", row.endpoint, row.key)
            message = f"{type(exc).__name__}: {exc}"[:1000]
            if attempt >= self.config.max_attempts:
                return _Outcome(ActionStatus.DEAD, "dead", message)
            return _Outcome(ActionStatus.PENDING, "retry", message, None, backoff_delay(attempt, self.config))
        if self.after_send is not None:
            self.after_send(delivery)
        return _Outcome(ActionStatus.DELIVERED, "delivered")

    def _values(self, row: Row[Any], result: _Outcome, now: datetime) -> dict[str, Any]:
        attempt = row.attempts + 1
        next_at = row.next_attempt_at
        if result.status is ActionStatus.PENDING:
            next_at = now + timedelta(seconds=result.delay)
        return {
            "_id": row.id,
            "status": result.status,
            "attempts": attempt,
            "last_error": result.error,
            "next_attempt_at": next_at,
            "delivered_at": now if result.status is ActionStatus.DELIVERED else None,
        }

    def _record(self, token: str, done: list[_Attempt]) -> None:
        """Write a group of attempts' outcomes in one transaction (one commit, not one per action)."""
        if not done:
            return
        o, d, now = tables.action_outbox, tables.action_deliveries, utcnow()
        mark = (
            update(o)
            .where(o.c.id == bindparam("_id"), o.c.claim_token == token)
            .values(
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                last_error=bindparam("last_error"),
                next_attempt_at=bindparam("next_attempt_at"),
                delivered_at=bindparam("delivered_at"),
                claim_token=None,
                claimed_until=None,
            )
        )
        attempts = [
            {
                "outbox_id": a.row.id,
                "attempt": a.row.attempts + 1,
                "outcome": a.result.outcome,
                "error": a.result.error,
                "retry_after": a.result.retry_after,
                "duration_ms": a.seconds * 1000.0,
                "started_at": a.started,
            }
            for a in done
        ]
        with self.engine.begin() as conn:
            conn.execute(mark, [self._values(a.row, a.result, now) for a in done])
            conn.execute(insert(d), attempts)
            for a in done:
                if a.result.outcome == "gone":
                    _set_endpoint(
                        conn, a.row.endpoint, disabled=True, reason=f"{a.row.key}: {a.result.error}"
                    )
        done.clear()

    def _attempt(self, row: Row[Any]) -> _Attempt:
        started, clock = utcnow(), time.perf_counter()
        result = self._send(row)
        return _Attempt(row, result, started, time.perf_counter() - clock)

    def _waves(self, rows: list[Row[Any]]) -> list[list[Row[Any]]]:
        """Rows sent together: up to ``concurrency``, at most one per endpoint whose plugin is not
        ``thread_safe`` (a webhook's HTTP client is; a pika connection is not)."""
        waves: list[list[Row[Any]]] = []
        current: list[Row[Any]] = []
        for row in rows:
            shared = not getattr(self._actions[row.endpoint], "thread_safe", False)
            clash = shared and any(r.endpoint == row.endpoint for r in current)
            if clash or len(current) >= self.config.concurrency:
                waves.append(current)
                current = []
            current.append(row)
        return [*waves, current] if current else waves

    def _send_wave(self, wave: list[Row[Any]]) -> list[_Attempt]:
        if len(wave) == 1:
            return [self._attempt(wave[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="loopml-send")
        return list(self._pool.map(self._attempt, wave))

    def run_once(self, limit: int | None = None) -> int:
        """Claim one batch of due actions and attempt each; returns how many were attempted.

        Outcomes are written in groups (every ``_FLUSH`` attempts, and at least every third of the
        lease): a crash re-sends at most one group, which the idempotency key makes harmless. When
        an endpoint is unreachable, its other actions in the batch wait for the same retry time
        without spending an attempt; after a 410 they stay pending while the endpoint is disabled.
        """
        token, rows = self.claim(limit)
        held: dict[str, float] = {}  # endpoint -> seconds its remaining actions wait (-1: disabled)
        done: list[_Attempt] = []
        waiting: list[tuple[int, float]] = []
        flushed = time.monotonic()
        for wave in self._waves(rows):
            waiting += [(r.id, held[r.endpoint]) for r in wave if r.endpoint in held]
            for attempt in self._send_wave([r for r in wave if r.endpoint not in held]):
                done.append(attempt)
                result = attempt.result
                if result.outcome == "gone" or result.unreachable:
                    held[attempt.row.endpoint] = -1.0 if result.outcome == "gone" else result.delay
            if len(done) >= _FLUSH or time.monotonic() - flushed > self.config.lease_s / 3:
                self._record(token, done)
                flushed = time.monotonic()
        self._record(token, done)
        self._hold(token, waiting)
        return len(rows) - len(waiting)

    def _hold(self, token: str, waiting: list[tuple[int, float]]) -> None:
        """Release claims not attempted, each due again after its endpoint's wait (no attempt spent)."""
        if not waiting:
            return
        o, now = tables.action_outbox, utcnow()
        release = (
            update(o)
            .where(o.c.id == bindparam("_id"), o.c.claim_token == token)
            .values(next_attempt_at=bindparam("next_at"), claim_token=None, claimed_until=None)
        )
        params = [{"_id": i, "next_at": now + timedelta(seconds=max(wait, 0.0))} for i, wait in waiting]
        with self.engine.begin() as conn:
            conn.execute(release, params)

    def drain(self, timeout: float | None = None, stop: threading.Event | None = None) -> int:
        """Attempt batches until none is due (or ``timeout`` seconds passed); returns the attempts."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = 0
        while not (stop and stop.is_set()) and (deadline is None or time.monotonic() < deadline):
            done = self.run_once()
            total += done
            if done == 0:
                break
        return total

    def close(self) -> None:
        """Close every plugin's connections."""
        for action in self._actions.values():
            try:
                action.close()
            except Exception:  # closing is best effort
                log.exception("closing an action plugin failed")
        self._actions.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _set_endpoint(conn: Any, name: str, *, disabled: bool, reason: str | None) -> None:
    e = tables.action_endpoints
    values = {"disabled": disabled, "reason": reason, "updated_at": utcnow()}
    if conn.execute(update(e).where(e.c.name == name).values(**values)).rowcount == 0:
        conn.execute(insert(e).values(name=name, **values))


def _config(settings: Settings | ActionsConfig) -> tuple[ActionsConfig, Path | None]:
    if isinstance(settings, Settings):
        return settings.actions, settings.project_dir
    return settings, None


def dispatch_once(
    settings: Settings | ActionsConfig, engine: Engine, *, timeout: float | None = None, **kwargs: Any
) -> int:
    """Deliver every due action now (until none is due or ``timeout`` passed); returns the attempts."""
    config, project_dir = _config(settings)
    dispatcher = Dispatcher(engine, config, project_dir=project_dir, **kwargs)
    try:
        return dispatcher.drain(timeout)
    finally:
        dispatcher.close()


def run_dispatcher(settings: Settings | ActionsConfig, engine: Engine, stop: threading.Event) -> None:
    """Deliver due actions every ``actions.interval_s`` seconds until ``stop`` is set (``loopml worker``)."""
    config, project_dir = _config(settings)
    dispatcher = Dispatcher(engine, config, project_dir=project_dir)
    try:
        while not stop.is_set():
            try:
                dispatcher.drain(stop=stop)
            except Exception as exc:  # a store hiccup must not end the worker; try again next tick
                log.error(
                    "action dispatch failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:300]
                )
            stop.wait(config.interval_s)
    finally:
        dispatcher.close()
