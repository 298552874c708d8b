"""The store-backed gauges of ``/metrics`` on each store backend: the last recorded monitoring pass,
the outbox backlog counted at scrape time, and ``loopml_store_up 0`` (never a failed scrape) when the
store cannot be read. Read back with prometheus_client's own parser."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, text

from loopml.serve.gauges import StoreGauges
from loopml.store import open_store, record_monitor_pass, tables, utcnow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gauges: StoreGauges) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(gauges)
    found: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _action(key: str, status: str, age: timedelta) -> dict[str, object]:
    created = utcnow() - age
    return {
        "key": key,
        "event": "prediction",
        "source_id": key,
        "rule": "high_risk",
        "endpoint": "crm",
        "kind": "webhook",
        "payload": {},
        "status": status,
        "attempts": 0,
        "next_attempt_at": created,
        "created_at": created,
    }


def test_the_gauges_of_a_pass_and_of_the_outbox(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, str(tmp_path / "artifacts"))
    gauges = StoreGauges(store, lambda: ("fraud", "fraud_failure"), ttl=0.0)
    try:
        before = scrape(gauges)
        assert before[("loopml_store_up", frozenset())] == 1.0
        assert before[("loopml_outbox_pending", frozenset())] == 0.0
        assert before[("loopml_outbox_oldest_pending_age_seconds", frozenset())] == 0.0
        assert not any(name.startswith("loopml_drift") for name, _ in before)  # no pass yet

        summary = {
            "drift": {
                "tx_amount": {"psi": 0.31, "js": None, "statistic": 0.2, "p_value": 1e-9, "drifted": True},
                "terminal_id": {"psi": 0.01, "js": None, "statistic": 0.01, "p_value": 0.8, "drifted": False},
            },
            "realized": {"average_precision": 0.61, "roc_auc": float("nan")},
            "estimated": {"average_precision": 0.58},
            "label_coverage": 0.4,
            "waiting_labels": 120,
        }
        record_monitor_pass(store.engine, "fraud", 3, {"drift": {}})
        record_monitor_pass(store.engine, "fraud", 4, summary)  # replaces the one before
        with store.engine.begin() as conn:
            conn.execute(
                insert(tables.action_outbox),
                [
                    _action("a", "pending", timedelta(minutes=30)),
                    _action("b", "pending", timedelta(minutes=1)),
                    _action("c", "dead", timedelta(days=2)),
                    _action("d", "delivered", timedelta(days=3)),
                ],
            )
        found = scrape(gauges)
    finally:
        store.engine.dispose()
    v4 = {("model", "fraud"), ("version", "4")}

    def at(name: str, **labels: str) -> float:
        return found[(name, frozenset(v4 | set(labels.items())))]

    assert at("loopml_drift_psi", feature="tx_amount") == 0.31
    assert at("loopml_drift_p_value", feature="tx_amount") == 1e-9
    assert at("loopml_drift_detected", feature="tx_amount") == 1.0
    assert at("loopml_drift_detected", feature="terminal_id") == 0.0
    assert not any(name == "loopml_drift_js" for name, _ in found)  # None: no series, not a 0
    assert at("loopml_performance_realized", metric="average_precision") == 0.61
    assert ("loopml_performance_realized", frozenset(v4 | {("metric", "roc_auc")})) not in found  # NaN
    assert at("loopml_performance_estimated", metric="average_precision") == 0.58
    assert at("loopml_label_coverage") == 0.4 and at("loopml_predictions_waiting_for_labels") == 120
    assert not any(("version", "3") in labels for _, labels in found)  # only the newest pass
    assert found[("loopml_outbox_pending", frozenset())] == 2.0
    assert found[("loopml_outbox_dead", frozenset())] == 1.0
    age = found[("loopml_outbox_oldest_pending_age_seconds", frozenset())]
    assert 30 * 60 - 5 < age < 30 * 60 + 120  # the oldest pending action, not the dead or delivered ones


def test_an_unreadable_store_is_store_up_zero_not_a_failed_scrape(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}", str(tmp_path / "artifacts"))
    gauges = StoreGauges(store, lambda: ("fraud",), ttl=60.0)
    try:
        assert scrape(gauges)[("loopml_store_up", frozenset())] == 1.0
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE action_outbox"))
        # within the ttl the gauges answer from what they last read (one query per ttl)
        assert scrape(gauges)[("loopml_outbox_pending", frozenset())] == 0.0
        gauges.ttl = 0.0
        found = scrape(gauges)
    finally:
        store.engine.dispose()
    assert found == {("loopml_store_up", frozenset()): 0.0}
    assert "the store could not be read" in caplog.text
