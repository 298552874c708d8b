"""A webhook receiver that verifies every request with the reference Standard Webhooks library is down
for 10 minutes (of a simulated clock: the dispatchers' ``now``) while 300 actions queue; three
dispatchers share the outbox. After it returns, every action is delivered exactly once per
``webhook-id``, none is dead and none is missing, with no manual replay; while it was down, one probe
at a time was tried on the retry schedule and the other actions spent no attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from actions_support import SimClock, log_predictions, make_settings, outbox_counts, prediction_rows
from sqlalchemy import Engine, func, select
from swh_receiver import SwhLog, SwhReceiver

from loopml.actions import action_summary, run_dispatcher
from loopml.enums import AlertKind
from loopml.store import tables

ACTIONS = 300
DOWN_S = 600.0  # simulated
WORKERS = 3


@pytest.fixture
def receiver(secret: str, tmp_path: Path) -> Iterator[SwhReceiver]:
    r = SwhReceiver(secret, tmp_path / "received.db").start()
    yield r
    r.stop()


def _failed_attempts(engine: Engine) -> int:
    d = tables.action_deliveries
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(d).where(d.c.outcome == "retry")).scalar_one()
        )


def test_receiver_down_for_ten_minutes_gets_every_action_once(
    engine: Engine, secret: str, receiver: SwhReceiver, tmp_path: Path
) -> None:
    receiver.stop()  # down from now on: connections refused; it comes back on the same port
    settings = make_settings(
        receiver.url,
        tmp_path,
        backoff_s=None,
        max_backoff_s=36000.0,
        concurrency=8,
        interval_s=0.02,
        batch=250,
    )  # the default retry schedule: immediately, 5s, 5m, 30m, 2h, 5h, 10h, 10h
    clock, stop = SimClock(), threading.Event()
    went_down = clock()
    workers = [
        threading.Thread(
            target=run_dispatcher, args=(settings, engine, stop), kwargs={"now": clock}, daemon=True
        )
        for _ in range(WORKERS)
    ]
    for w in workers:
        w.start()
    try:
        for _ in range(10):  # the actions queue while the receiver is down, over the 10 minutes
            log_predictions(engine, settings, prediction_rows(ACTIONS // 10))
            for _ in range(12):
                clock.advance(5.0)
                time.sleep(0.02)
        assert outbox_counts(engine) == {"pending": ACTIONS}  # nothing lost, nothing given up
        during = _failed_attempts(engine)
        summary = action_summary(engine)
        (down,) = summary["down_endpoints"]
        assert down["endpoint"] == "cases" and down["alerted"]
        # The first wave (concurrency sends) failed, then probes at 5 s and 5 min 5 s, one at a time.
        assert 3 <= during <= settings.actions.concurrency + 2, during
        receiver.start()  # back, same port, same log
        back = time.monotonic()
        while outbox_counts(engine) != {"delivered": ACTIONS} and time.monotonic() - back < 60:
            if action_summary(engine)["down_endpoints"]:  # until the next probe finds it back
                clock.advance(30.0)
            time.sleep(0.05)
        caught_up = time.monotonic() - back
        recovered_after = (clock() - went_down).total_seconds()
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert outbox_counts(engine) == {"delivered": ACTIONS}, f"not all delivered {caught_up:.0f} s after"
    with engine.connect() as conn:
        keys = set(conn.execute(select(tables.action_outbox.c.key)).scalars())
        alerts = conn.execute(select(tables.alerts.c.kind, tables.alerts.c.subject)).all()
    received = SwhLog(receiver.db_path)
    assert len(keys) == ACTIONS
    assert received.accepted_per_id() == dict.fromkeys(keys, 1)  # each webhook-id processed once
    outcomes = received.outcomes()
    assert outcomes["rejected"] == 0  # every signature verified by the reference library
    assert [tuple(a) for a in alerts] == [(AlertKind.ENDPOINT_DOWN, "cases")]  # one alert for the outage
    assert action_summary(engine)["down_endpoints"] == []
    # Order: the probe was the oldest action; then oldest first (the sends of one wave may interleave).
    with engine.connect() as conn:
        o = tables.action_outbox
        rank = {k: i for i, k in enumerate(conn.execute(select(o.c.key).order_by(o.c.id)).scalars())}
    arrived = [rank[k] for k in received.accepted_in_order()]
    assert arrived[0] == 0
    assert max(abs(a - i) for i, a in enumerate(arrived)) < WORKERS * settings.actions.concurrency
    failed = _failed_attempts(engine)
    print(
        f"\noutage: {ACTIONS} actions, receiver down {DOWN_S:.0f} s (simulated), {WORKERS} dispatchers; "
        f"failed attempts while down {during}, in all {failed}; delivered {outcomes['accepted']} "
        f"(unique webhook-ids {len(received.accepted_per_id())}), duplicates {outcomes['duplicate']}, "
        f"dead 0, rejected {outcomes['rejected']}; caught up {caught_up:.1f} s (real) after it returned, "
        f"{recovered_after / 60:.1f} min (simulated) after it went down; endpoint_down alerts {len(alerts)}"
    )
