"""The dispatcher: claims due actions from the outbox, sends them, records every attempt.

At least once: an action is marked delivered only after its plugin's ``send`` returned, so a crash
between the two sends it again later, with the same idempotency key (receivers de-duplicate on it).
Claims are leases: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` on PostgreSQL (so
any number of workers share the outbox without waiting on each other), the same statement under
SQLite's single writer; a worker that dies leaves its claims to expire after ``actions.lease_s``.

A failure worth retrying (unreachable, timeout, 5xx, 408, 425, 429) takes its endpoint down (see
:mod:`loopml.actions.breaker`, whose state lives in the store): its other actions wait, spending no
attempt, while one probe at a time (the oldest pending action) is tried on the retry schedule
(``actions.retry_schedule``, never sooner than the receiver's ``Retry-After``). When the endpoint
answers, its actions go out again oldest first. An action is dead only once its endpoint has failed
for the whole retry horizon, or at once on a permanent failure (``loopml actions replay`` re-queues
it); HTTP 410 also disables its endpoint until a replay.
"""

from __future__ import annotations

import logging
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
from loopml.actions import breaker
from loopml.actions.base import Action, Delivery, DeliveryError
from loopml.actions.outbox import enqueue_for_alerts
from loopml.config import ActionsConfig, Settings
from loopml.enums import ActionStatus
from loopml.errors import LoopMLError
from loopml.store import tables, utcnow

__all__ = ["Dispatcher", "backoff_delay", "dispatch_once", "open_action", "run_dispatcher"]

log = logging.getLogger(__name__)
AfterSend = Callable[[Delivery], None]
Clock = Callable[[], datetime]
_FLUSH = 50  # attempts whose outcomes are written in one transaction


def backoff_delay(failures: int, config: ActionsConfig, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after ``failures`` consecutive failures, per the retry
    schedule, and never less than ``retry_after``."""
    delay = config.retry_delay(failures)
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
    probe: bool = False


@dataclass
class _Outcome:
    status: ActionStatus  # delivered | pending | dead
    outcome: str  # delivered | retry | dead | gone
    error: str | None = None
    retry_after: float | None = None

    @property
    def answered(self) -> bool:
        """The endpoint is there (it took the action, or refused it for good)."""
        return self.outcome != "retry"


class Dispatcher:
    """Delivers due actions of one project; one per worker thread (it holds plugin connections).

    ``now`` is the clock every decision reads (claims, the retry schedule, the retry horizon, the
    down alert): a test passes a simulated one to live through hours of outage in seconds.
    """

    def __init__(
        self,
        engine: Engine,
        config: ActionsConfig,
        *,
        actions: Mapping[str, Action] | None = None,
        after_send: AfterSend | None = None,
        project_dir: Path | None = None,
        model: str = "loopml",
        now: Clock = utcnow,
    ) -> None:
        self.engine, self.config, self.after_send = engine, config, after_send
        self.project_dir, self.model, self.now = project_dir, model, now
        self._actions: dict[str, Action] = dict(actions or {})
        self._broken: dict[str, str] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._probes: set[int] = set()  # ids claimed as their endpoint's probe in the current batch
        self._on_alert = enqueue_for_alerts(config)

    def _action(self, name: str) -> Action | None:
        if name not in self._actions and name not in self._broken:
            try:
                self._actions[name] = open_action(name, self.config, self.project_dir)
            except LoopMLError as exc:  # e.g. a missing secret: keep its actions pending, say why once
                self._broken[name] = str(exc)
                log.error("actions for endpoint '%s' are held: %s", name, exc)
        return self._actions.get(name)

    def claim(self, limit: int | None = None) -> tuple[str, list[Row[Any]]]:
        """Lease up to ``limit`` due actions of usable endpoints: ``(claim token, rows)``.

        Endpoints that are up give their due actions, oldest first, unless another dispatcher holds
        claims on them (then they wait for it: one sender per endpoint keeps the order); an endpoint
        that is down gives only its oldest pending action, once its probe is due and no other
        dispatcher took the probe.
        """
        token, now = uuid.uuid4().hex, self.now()
        self._probes = set()
        endpoints = [n for n in self.config.endpoints if self._action(n) is not None]
        if not endpoints or not breaker.any_pending(self.engine, endpoints):
            return token, []  # idle: no write transaction
        with self.engine.begin() as conn:
            states = breaker.lock(conn, endpoints, now)  # the endpoints' rows, locked, then read
            endpoints = [n for n in endpoints if not states[n].disabled]
            up = [n for n in endpoints if not states[n].down]
            for name in (n for n in endpoints if states[n].down and (states[n].next_probe_at or now) <= now):
                probe = breaker.oldest_pending(conn, name, now)
                if probe is not None and breaker.take_probe(conn, name, now, self.config.lease_s):
                    self._probes.add(probe)
            rows = self._lease(conn, token, now, breaker.free(conn, up, now), limit)
        return token, rows

    def _lease(
        self, conn: Any, token: str, now: datetime, up: list[str], limit: int | None
    ) -> list[Row[Any]]:
        """Claim the probes and the due actions of ``up`` (free endpoints), oldest first."""
        o = tables.action_outbox
        lease = now + timedelta(seconds=self.config.lease_s)
        if self._probes:
            conn.execute(
                update(o).where(o.c.id.in_(self._probes)).values(claim_token=token, claimed_until=lease)
            )
        if up:
            due = (
                select(o.c.id)
                .where(o.c.status == ActionStatus.PENDING, o.c.next_attempt_at <= now, o.c.endpoint.in_(up))
                .where(or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))
                .order_by(o.c.id)
                .limit(limit or self.config.batch)
                .with_for_update(skip_locked=True)
            )
            conn.execute(
                update(o)
                .where(o.c.id.in_(due.scalar_subquery()))
                .values(claim_token=token, claimed_until=lease)
            )
        return list(conn.execute(select(o).where(o.c.claim_token == token).order_by(o.c.id)).all())

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
            if exc.permanent:
                return _Outcome(ActionStatus.DEAD, "dead", message, exc.retry_after)
            return _Outcome(ActionStatus.PENDING, "retry", message, exc.retry_after)
        except Exception as exc:  # a plugin bug must not stop the dispatcher: retry, keep it visible
            log.exception("endpoint '%s' raised while sending %s", row.endpoint, row.key)
            return _Outcome(ActionStatus.PENDING, "retry", f"{type(exc).__name__}: {exc}"[:1000])
        if self.after_send is not None:
            self.after_send(delivery)
        return _Outcome(ActionStatus.DELIVERED, "delivered")

    @staticmethod
    def _values(row: Row[Any], result: _Outcome, now: datetime) -> dict[str, Any]:
        return {
            "_id": row.id,
            "status": result.status,
            "attempts": row.attempts + 1,
            "last_error": result.error,
            "delivered_at": now if result.status is ActionStatus.DELIVERED else None,
        }

    def _record(self, token: str, done: list[_Attempt]) -> None:
        """Write a group of attempts' outcomes, and what they say about their endpoints, in one
        transaction (one commit, not one per action)."""
        if not done:
            return
        o, d, now = tables.action_outbox, tables.action_deliveries, self.now()
        mark = (
            update(o)
            .where(o.c.id == bindparam("_id"), o.c.claim_token == token)
            .values(
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                last_error=bindparam("last_error"),
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
            self._judge_endpoints(conn, done, now)
        done.clear()

    def _judge_endpoints(self, conn: Any, done: list[_Attempt], now: datetime) -> None:
        """A failure worth retrying takes its endpoint down (or moves its next probe along); an
        answer brings it up. While it is down for the whole retry horizon, old actions are dead."""
        failed: dict[str, _Attempt] = {}
        answered: set[str] = set()
        for a in done:
            if a.result.outcome == "retry":
                if a.row.endpoint not in failed or a.probe:
                    failed[a.row.endpoint] = a
            else:
                answered.add(a.row.endpoint)
        for name in answered - set(failed):
            breaker.mark_up(conn, name, now)
        for name, a in failed.items():
            r = a.result
            breaker.failed(
                conn, self.config, name, now, probe=a.probe, error=r.error, retry_after=r.retry_after
            )

    def _attempt(self, row: Row[Any]) -> _Attempt:
        started, clock = self.now(), time.perf_counter()
        result = self._send(row)
        return _Attempt(row, result, started, time.perf_counter() - clock, row.id in self._probes)

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

    def _down_now(self, wave: list[Row[Any]]) -> set[str]:
        """Endpoints of ``wave`` that another worker took down since this batch was claimed."""
        names = {r.endpoint for r in wave if r.id not in self._probes}
        if not names:
            return set()
        states = breaker.endpoint_states(self.engine)
        return {n for n in names if n in states and (states[n].down or states[n].disabled)}

    def run_once(self, limit: int | None = None) -> int:
        """Claim one batch of due actions and attempt each; returns how many were attempted.

        Outcomes are written in groups (every ``_FLUSH`` attempts, and at least every third of the
        lease): a crash re-sends at most one group, which the idempotency key makes harmless. Once an
        endpoint fails (here or in another worker), its other claimed actions are released without an
        attempt; they wait for the endpoint's probe.
        """
        breaker.raise_down_alerts(self.engine, self.config, self.model, self.now(), self._on_alert)
        token, rows = self.claim(limit)
        held: set[str] = set()  # endpoints whose remaining actions wait
        done: list[_Attempt] = []
        waiting: list[int] = []
        flushed = time.monotonic()
        for wave in self._waves(rows):
            held |= self._down_now([r for r in wave if r.endpoint not in held])
            waiting += [r.id for r in wave if r.endpoint in held and r.id not in self._probes]
            for attempt in self._send_wave(
                [r for r in wave if r.endpoint not in held or r.id in self._probes]
            ):
                done.append(attempt)
                if attempt.result.outcome in ("retry", "gone"):
                    held.add(attempt.row.endpoint)
            if len(done) >= _FLUSH or time.monotonic() - flushed > self.config.lease_s / 3:
                self._record(token, done)
                flushed = time.monotonic()
        self._record(token, done)
        self._release(token, waiting)
        return len(rows) - len(waiting)

    def _release(self, token: str, waiting: list[int]) -> None:
        """Release claims not attempted (no attempt spent): they wait for their endpoint's probe."""
        if not waiting:
            return
        o = tables.action_outbox
        with self.engine.begin() as conn:
            conn.execute(
                update(o)
                .where(o.c.id.in_(waiting), o.c.claim_token == token)
                .values(claim_token=None, claimed_until=None)
            )

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


def _dispatcher(settings: Settings | ActionsConfig, engine: Engine, **kwargs: Any) -> Dispatcher:
    if isinstance(settings, Settings):
        kwargs = {"project_dir": settings.project_dir, "model": settings.name, **kwargs}
        return Dispatcher(engine, settings.actions, **kwargs)
    return Dispatcher(engine, settings, **kwargs)


def dispatch_once(
    settings: Settings | ActionsConfig, engine: Engine, *, timeout: float | None = None, **kwargs: Any
) -> int:
    """Deliver every due action now (until none is due or ``timeout`` passed); returns the attempts."""
    dispatcher = _dispatcher(settings, engine, **kwargs)
    try:
        return dispatcher.drain(timeout)
    finally:
        dispatcher.close()


def run_dispatcher(
    settings: Settings | ActionsConfig, engine: Engine, stop: threading.Event, *, now: Clock = utcnow
) -> None:
    """Deliver due actions every ``actions.interval_s`` seconds until ``stop`` is set (``loopml worker``)."""
    dispatcher = _dispatcher(settings, engine, now=now)
    try:
        while not stop.is_set():
            try:
                dispatcher.drain(stop=stop)
            except Exception as exc:  # a store hiccup must not end the worker; try again next tick
                log.error(
                    "action dispatch failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:300]
                )
            stop.wait(dispatcher.config.interval_s)
    finally:
        dispatcher.close()
