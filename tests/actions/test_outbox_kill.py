"""``kill -9`` of the dispatcher between send and mark-sent, 100 times: nothing is lost, and the
receiver's de-duplication processes every idempotency key exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from actions_support import ReceiverProcess, log_predictions, make_settings, outbox_counts, prediction_rows
from sqlalchemy import Engine, select

from loopml.actions import Delivery, Dispatcher, dispatch_once, open_action
from loopml.config import Settings
from loopml.store import tables

RUNS = 100


def _dispatch_and_die(engine: Engine, settings: Settings) -> None:
    """In a forked child: claim one action, send it, and SIGKILL this process before marking it."""
    engine.dispose(close=False)  # the parent's SQLite connections are not the child's to use

    def die(_: Delivery) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # sent, not yet marked: the worst moment to die

    try:
        Dispatcher(engine, settings.actions, after_send=die).run_once(limit=1)
    finally:
        os._exit(3)  # reached only when nothing was sent


def test_kill_9_between_send_and_mark_loses_nothing(engine: Engine, secret: str, tmp_path: Path) -> None:
    receiver = ReceiverProcess(secret, tmp_path / "cases.db").start()  # its own process: nothing forked
    try:
        settings = make_settings(receiver.url, tmp_path, lease_s=1.0, concurrency=1)
        log_predictions(engine, settings, prediction_rows(RUNS))
        open_action("cases", settings.actions).close()  # imports and the TLS context, before forking
        killed, started = 0, time.monotonic()
        for _ in range(RUNS):
            pid = os.fork()
            if pid == 0:
                _dispatch_and_die(engine, settings)
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
