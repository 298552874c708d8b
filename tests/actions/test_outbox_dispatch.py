"""The outbox and the dispatcher over a real SQLite/PostgreSQL store and a real HTTP receiver."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from actions_support import (
    SimClock,
    log_predictions,
    make_settings,
    outbox_counts,
    prediction_rows,
    register_version,
)
from sqlalchemy import select

from loopml.actions import Dispatcher, action_summary, dispatch_once, replay
from loopml.examples.fraud.receiver import CaseReceiver
from loopml.store import create_store_engine, tables, write_predictions


def test_matching_predictions_are_delivered_once_each(engine, receiver: CaseReceiver, tmp_path: Path) -> None:
    settings = make_settings(receiver.url, tmp_path)
    log_predictions(engine, settings, prediction_rows(30, score=lambda i: 0.9 if i % 3 == 0 else 0.1))
    assert outbox_counts(engine) == {"pending": 10}
    assert dispatch_once(settings, engine) == 10
    assert outbox_counts(engine) == {"delivered": 10}
    cases = receiver.cases()
    assert sorted(c["transaction_id"] for c in cases) == list(range(0, 30, 3))
    assert all(c["score"] == 0.9 for c in cases)  # a one-reference template keeps the number a number
    assert set(receiver.accepted_per_id().values()) == {1}
    assert dispatch_once(settings, engine) == 0  # nothing due: nothing sent again


def test_action_exists_only_if_its_prediction_commits(engine, receiver: CaseReceiver, tmp_path: Path) -> None:
    settings = make_settings(receiver.url, tmp_path)
    from loopml.actions import enqueue_for_predictions

    hook = enqueue_for_predictions(settings.actions)
    assert hook is not None

    def failing_hook(connection, rows) -> None:
        hook(connection, rows)
        raise RuntimeError("the transaction fails after the actions were inserted")

    with pytest.raises(RuntimeError):
        write_predictions(engine, prediction_rows(5), on_write=failing_hook)
    assert outbox_counts(engine) == {}
    with engine.connect() as conn:
        assert conn.execute(select(tables.predictions.c.id)).first() is None


def test_dedupe_window_and_rate_limit_keep_suppressed_rows(engine, receiver, tmp_path: Path) -> None:
    rules = [
        {
            "name": "card-once",
            "endpoint": "cases",
            "when": [{"field": "score", "op": ">", "value": 0.5}],
            "dedupe": {"key": "{inputs.card_id}", "window": "1h"},
        },
        {"name": "limited", "endpoint": "cases", "rate_limit": {"max": 4, "per": "1h"}},
    ]
    settings = make_settings(receiver.url, tmp_path, rules=rules)
    log_predictions(engine, settings, prediction_rows(20))  # card_id = i % 7
    log_predictions(engine, settings, prediction_rows(3))  # later call: the store remembers
    o = tables.action_outbox
    with engine.connect() as conn:
        rows = conn.execute(select(o.c.rule, o.c.status, o.c.last_error)).all()
    card = [r for r in rows if r.rule == "card-once"]
    assert sum(r.status == "pending" for r in card) == 7
    assert sum(r.status == "suppressed" for r in card) == 16
    assert all("duplicate of" in r.last_error for r in card if r.status == "suppressed")
    limited = [r for r in rows if r.rule == "limited"]
    assert sum(r.status == "pending" for r in limited) == 4
    assert all("rate limit 4 per 1h" in r.last_error for r in limited if r.status == "suppressed")


def test_cost_optimal_threshold_condition(engine, receiver, tmp_path: Path) -> None:
    rule = {
        "name": "above-threshold",
        "endpoint": "cases",
        "when": [{"field": "score", "op": ">=", "threshold": "cost_optimal"}],
        "payload": {"tx": "{inputs.transaction_id}"},
    }
    settings = make_settings(receiver.url, tmp_path, rules=[rule])
    register_version(engine, threshold=0.3)
    log_predictions(engine, settings, prediction_rows(10, score=lambda i: i / 10))
    dispatch_once(settings, engine)
    assert sorted(c["tx"] for c in receiver.cases()) == [3, 4, 5, 6, 7, 8, 9]


def test_retry_after_is_honoured_then_delivered(engine, receiver: CaseReceiver, tmp_path: Path) -> None:
    settings = make_settings(receiver.url, tmp_path)
    log_predictions(engine, settings, prediction_rows(1))
    receiver.fail_next(1, 503, {"Retry-After": "1"})
    before = time.monotonic()
    dispatch_once(settings, engine)
    assert outbox_counts(engine) == {"pending": 1}
    deadline = time.monotonic() + 5
    while outbox_counts(engine) != {"delivered": 1} and time.monotonic() < deadline:
        dispatch_once(settings, engine)
        time.sleep(0.05)
    assert outbox_counts(engine) == {"delivered": 1}
    assert time.monotonic() - before >= 0.95  # not before the receiver's Retry-After
    d = tables.action_deliveries
    with engine.connect() as conn:
        attempts = conn.execute(select(d.c.outcome, d.c.retry_after).order_by(d.c.id)).all()
    assert [a.outcome for a in attempts] == ["retry", "delivered"]
    assert attempts[0].retry_after == 1.0


def test_dead_only_after_the_retry_horizon_then_replay(
    engine, receiver: CaseReceiver, tmp_path: Path
) -> None:
    """The default schedule (immediately, 5s, 5m, 30m, 2h, 5h, 10h, 10h) on a simulated clock: a
    receiver that answers 500 for ever kills the action at its 8th attempt, 27 h 35 min on."""
    settings = make_settings(receiver.url, tmp_path, backoff_s=None, max_backoff_s=36000.0)
    assert settings.actions.retry_horizon_s == 99305.0
    clock = SimClock()
    start = clock()
    log_predictions(engine, settings, prediction_rows(1))
    receiver.fail_next(8, 500)
    probes = []
    while outbox_counts(engine) == {"pending": 1} and clock() - start < timedelta(days=3):
        probes.append(dispatch_once(settings, engine, now=clock))
        state = action_summary(engine)["down_endpoints"]
        if state:
            clock.to(state[0]["next_probe_at"].replace(tzinfo=start.tzinfo))
    assert outbox_counts(engine) == {"dead": 1}
    assert sum(probes) == 8  # one attempt per probe: the schedule's 1 + 7
    d = tables.action_deliveries
    with engine.connect() as conn:
        times = conn.execute(select(d.c.started_at).order_by(d.c.id)).scalars().all()
    gaps = [round((b - a).total_seconds()) for a, b in itertools.pairwise(times)]
    assert gaps == [5, 300, 1800, 7200, 18000, 36000, 36000]
    summary = action_summary(engine)
    assert summary["dead"] == 1 and summary["by_kind"]["webhook"]["dead"] == 1
    assert replay(engine) == {"replayed": 1, "enabled": []}
    dispatch_once(settings, engine, now=clock)
    assert outbox_counts(engine) == {"delivered": 1}
    assert len(receiver.cases()) == 1


def test_permanent_4xx_is_dead_at_once(engine, receiver: CaseReceiver, tmp_path: Path) -> None:
    settings = make_settings(receiver.url, tmp_path)
    log_predictions(engine, settings, prediction_rows(1))
    receiver.fail_next(1, 422)
    dispatch_once(settings, engine)
    assert outbox_counts(engine) == {"dead": 1}


def test_http_410_disables_the_endpoint_until_replay(engine, receiver: CaseReceiver, tmp_path: Path) -> None:
    settings = make_settings(receiver.url, tmp_path)
    log_predictions(engine, settings, prediction_rows(5))
    receiver.fail_next(1, 410)
    dispatch_once(settings, engine)
    counts = outbox_counts(engine)  # sends in flight beside the 410 may have been delivered
    assert counts["dead"] == 1 and counts.get("pending", 0) >= 1
    assert counts.get("delivered", 0) + counts["pending"] == 4
    summary = action_summary(engine)
    assert [d["endpoint"] for d in summary["disabled_endpoints"]] == ["cases"]
    assert "gone" in summary["disabled_endpoints"][0]["reason"]
    assert dispatch_once(settings, engine) == 0  # disabled: nothing is attempted
    assert replay(engine, endpoint="cases") == {"replayed": 1, "enabled": ["cases"]}
    dispatch_once(settings, engine)
    assert outbox_counts(engine) == {"delivered": 5}
    assert action_summary(engine)["disabled_endpoints"] == []


def test_missing_secret_holds_actions_pending(engine, receiver, tmp_path: Path, monkeypatch) -> None:
    settings = make_settings(receiver.url, tmp_path)
    log_predictions(engine, settings, prediction_rows(2))
    monkeypatch.delenv("LOOPML_TEST_CASES_SECRET")
    assert dispatch_once(settings, engine) == 0
    assert outbox_counts(engine) == {"pending": 2}


@pytest.mark.postgres
def test_concurrent_dispatchers_on_postgres_never_double_send(postgres_url, receiver, tmp_path: Path) -> None:
    engine = create_store_engine(postgres_url)
    try:
        settings = make_settings(receiver.url, tmp_path, batch=10)
        log_predictions(engine, settings, prediction_rows(200))
        workers = [Dispatcher(engine, settings.actions) for _ in range(4)]
        threads = [threading.Thread(target=w.drain) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for w in workers:
            w.close()
        assert outbox_counts(engine) == {"delivered": 200}
        outcomes = receiver.outcomes()
        assert outcomes["accepted"] == 200 and outcomes["duplicate"] == 0  # SKIP LOCKED: no overlap
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_rate_limit_holds_across_concurrent_writers_on_postgres(postgres_url, tmp_path: Path) -> None:
    engine = create_store_engine(postgres_url)
    try:
        rules = [{"name": "limited", "endpoint": "cases", "rate_limit": {"max": 5, "per": "1h"}}]
        settings = make_settings("http://127.0.0.1:1/x", tmp_path, rules=rules)
        start = threading.Barrier(4)

        def write() -> None:
            start.wait()
            for _ in range(5):
                log_predictions(engine, settings, prediction_rows(2))

        threads = [threading.Thread(target=write) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert outbox_counts(engine) == {"pending": 5, "suppressed": 35}
    finally:
        engine.dispose()
