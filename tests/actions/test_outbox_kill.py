"""``kill -9`` of dispatchers mid-delivery: nothing is lost, and every idempotency key is processed
exactly once by the receiver.

The first test kills a dispatcher at the worst moment, between send and mark-sent, many times. The
second is an outage and 20 killed dispatchers together: 300 actions queue while a receiver that
verifies signatures with the reference Standard Webhooks library is down; dispatcher processes
(each a fork, as a restarted worker) are killed with SIGKILL one after another, during the outage and
then between a send and its mark; after it, every action is delivered exactly once per ``webhook-id``,
none is dead and none is missing, with no manual replay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from actions_support import (
    SECRET_ENV,
    ReceiverProcess,
    log_predictions,
    make_settings,
    outbox_counts,
    prediction_rows,
)
from sqlalchemy import Engine, select
from swh_receiver import SwhLog

from loopml.actions import Delivery, Dispatcher, dispatch_once, open_action
from loopml.config import Settings
from loopml.store import tables

RUNS = 40
ACTIONS = 300
KILLS = 20
UP_AT = 5  # the receiver comes back after this many killed dispatchers


def _dispatch_and_die(engine: Engine, settings: Settings, lease_s: float) -> None:
    """In a forked child: claim one action (waiting out a dead dispatcher's claim on the endpoint),
    send it, and SIGKILL this process before marking it."""
    engine.dispose(close=False)  # the parent's SQLite connections are not the child's to use

    def die(_: Delivery) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # sent, not yet marked: the worst moment to die

    try:
        dispatcher = Dispatcher(engine, settings.actions, after_send=die)
        deadline = time.monotonic() + 5 * lease_s
        while time.monotonic() < deadline and dispatcher.run_once(limit=1) == 0:
            time.sleep(0.02)
    finally:
        os._exit(3)  # reached only when nothing was sent


def test_kill_9_between_send_and_mark_loses_nothing(engine: Engine, secret: str, tmp_path: Path) -> None:
    receiver = ReceiverProcess(secret, tmp_path / "cases.db").start()  # its own process: nothing forked
    try:
        settings = make_settings(receiver.url, tmp_path, lease_s=0.2, concurrency=1)
        log_predictions(engine, settings, prediction_rows(RUNS))
        open_action("cases", settings.actions).close()  # imports and the TLS context, before forking
        killed, started = 0, time.monotonic()
        for _ in range(RUNS):
            pid = os.fork()
            if pid == 0:
                _dispatch_and_die(engine, settings, settings.actions.lease_s)
            _, status = os.waitpid(pid, 0)
            killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        forked = time.monotonic() - started
        assert killed == RUNS, f"only {killed} of {RUNS} dispatchers died between send and mark"
        assert outbox_counts(engine) == {"pending": RUNS}  # sent, never marked: still owed
        time.sleep(settings.actions.lease_s)  # the dead dispatchers' claims expire
        dispatch_once(settings, engine)
        assert outbox_counts(engine) == {"delivered": RUNS}
    finally:
        receiver.stop()
    seen = receiver.view()
    with engine.connect() as conn:
        keys = set(conn.execute(select(tables.action_outbox.c.key)).scalars())
    assert seen.accepted_per_id() == dict.fromkeys(keys, 1)  # every key processed once, none missing
    outcomes = seen.outcomes()
    assert outcomes["duplicate"] >= RUNS  # the killed sends arrived, and were recognised as copies
    assert outcomes["rejected"] == 0
    assert forked < 90, f"{RUNS} fork/kill runs took {forked:.1f} s"


class _SwhProcess:
    """The Standard Webhooks receiver of ``swh_receiver.py`` in its own process (stop: SIGTERM)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path, self.port, self.process = db_path, 0, None  # type: ignore[var-annotated]

    def start(self) -> _SwhProcess:
        script = Path(__file__).with_name("swh_receiver.py")
        command = [sys.executable, str(script), "--secret-env", SECRET_ENV, "--db", str(self.db_path)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], stdout=subprocess.PIPE, text=True
        )
        url = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://"), f"the receiver did not start: {url!r}"
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.url = url
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _dispatch_until_killed(engine: Engine, settings: Settings, sends: int) -> None:
    """In a forked child: a dispatcher that runs until it is killed, by the parent or by itself
    right after its ``sends``-th send (before marking it)."""
    engine.dispose(close=False)
    count = 0

    def maybe_die(_: Delivery) -> None:
        nonlocal count
        count += 1
        if count >= sends:
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        dispatcher = Dispatcher(engine, settings.actions, after_send=maybe_die, model="fraud")
        while True:
            dispatcher.drain()
            time.sleep(settings.actions.interval_s)
    finally:
        os._exit(3)


def test_outage_and_20_killed_dispatchers_deliver_every_action_once(
    engine: Engine, secret: str, tmp_path: Path
) -> None:
    receiver = _SwhProcess(tmp_path / "received.db").start()
    receiver.stop()  # down: its port refuses connections until it comes back
    settings = make_settings(
        receiver.url,
        tmp_path,
        backoff_s=0.2,
        max_backoff_s=1.0,
        retry_horizon=120,
        lease_s=0.5,
        concurrency=4,
        interval_s=0.02,
        batch=50,
    )
    log_predictions(engine, settings, prediction_rows(ACTIONS))
    open_action("cases", settings.actions).close()
    rng = random.Random(7)
    by_itself = 0
    try:
        for i in range(KILLS):
            if i == UP_AT:
                receiver.start()
            pid = os.fork()
            if pid == 0:
                _dispatch_until_killed(engine, settings, rng.randint(5, 30))
            deadline, status = time.monotonic() + (1.5 if i < UP_AT else 5.0), None
            while status is None and time.monotonic() < deadline:
                done, code = os.waitpid(pid, os.WNOHANG)
                status = code if done else None
                time.sleep(0.01)
            if status is None:  # still running (during the outage: probing): killed from outside
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
            else:
                by_itself += 1
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        left = outbox_counts(engine)
        assert left.get("dead", 0) == 0
        deadline = time.monotonic() + 60  # a last worker, after the last dead one's claims expire
        while outbox_counts(engine) != {"delivered": ACTIONS} and time.monotonic() < deadline:
            dispatch_once(settings, engine, model="fraud")
            time.sleep(0.1)
    finally:
        receiver.stop()
    assert outbox_counts(engine) == {"delivered": ACTIONS}
    received = SwhLog(receiver.db_path)
    with engine.connect() as conn:
        keys = set(conn.execute(select(tables.action_outbox.c.key)).scalars())
    assert received.accepted_per_id() == dict.fromkeys(keys, 1)  # each webhook-id processed once
    outcomes = received.outcomes()
    assert outcomes["rejected"] == 0
    assert by_itself >= KILLS - UP_AT - 2  # most were killed between a send and its mark
    print(
        f"\nkill -9: {ACTIONS} actions, {KILLS} dispatchers killed ({by_itself} between send and mark, "
        f"{KILLS - by_itself} from outside, {UP_AT} of them during the outage); left for the last "
        f"worker {left}; delivered {outcomes['accepted']} (unique webhook-ids "
        f"{len(received.accepted_per_id())}), duplicates {outcomes['duplicate']}, dead 0"
    )
