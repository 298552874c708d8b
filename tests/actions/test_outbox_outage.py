"""The receiver is down for 60 seconds while 1,000 actions queue; after it returns, every action is
delivered and processed exactly once per idempotency key. (The one long test of the actions layer.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from actions_support import ReceiverProcess, log_predictions, make_settings, outbox_counts, prediction_rows
from sqlalchemy import Engine, func, select

from loopml.actions import run_dispatcher
from loopml.store import tables

ACTIONS = 1000
DOWN_S = 60.0


def test_receiver_down_for_a_minute_gets_every_action_once(
    engine: Engine, secret: str, tmp_path: Path
) -> None:
    receiver = ReceiverProcess(secret, tmp_path / "cases.db").start()
    receiver.stop()  # down from now on; it comes back on the same port
    went_down = time.monotonic()
    settings = make_settings(
        receiver.url,
        tmp_path,
        backoff_s=0.5,
        max_backoff_s=2.0,
        concurrency=8,
        max_attempts=1000,
        interval_s=0.2,
        batch=250,
    )
    stop = threading.Event()
    worker = threading.Thread(target=run_dispatcher, args=(settings, engine, stop), daemon=True)
    worker.start()
    try:
        for _ in range(10):  # the actions queue while the receiver is down
            log_predictions(engine, settings, prediction_rows(ACTIONS // 10))
            time.sleep(1.0)
        assert outbox_counts(engine) == {"pending": ACTIONS}  # nothing lost, nothing given up
        d = tables.action_deliveries
        with engine.connect() as conn:
            failed = conn.execute(select(func.count()).select_from(d).where(d.c.outcome == "retry")).scalar()
        assert failed, "the dispatcher should have been trying (and failing) meanwhile"
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - went_down)))
        receiver.start()  # back, same port, same case database
        back = time.monotonic()
        while outbox_counts(engine) != {"delivered": ACTIONS} and time.monotonic() - back < 45:
            time.sleep(0.2)
        caught_up = time.monotonic() - back
    finally:
        stop.set()
        worker.join(30)
        receiver.stop()
    assert outbox_counts(engine) == {"delivered": ACTIONS}, f"not all delivered {caught_up:.0f} s after"
    seen = receiver.view()
    with engine.connect() as conn:
        keys = set(conn.execute(select(tables.action_outbox.c.key)).scalars())
    assert len(keys) == ACTIONS
    assert seen.accepted_per_id() == dict.fromkeys(keys, 1)  # each idempotency key processed once
    assert len(seen.cases()) == ACTIONS
    assert seen.outcomes()["rejected"] == 0
    assert caught_up < 30, f"took {caught_up:.1f} s to catch up after the receiver came back"
