"""The fraud example's actions as shipped: cases above the cost-optimal threshold reach the example
case receiver (signed, de-duplicated), card blocks land in an SQL table, alerts in a log file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from actions_support import log_predictions, prediction_rows, register_version

from loopml.config import load_settings
from loopml.examples import write_example
from loopml.examples.fraud.actions import run_fraud_actions
from loopml.project import Project


def test_fraud_example_sends_cases_and_blocks(tmp_path: Path, migrated_store: Path, monkeypatch) -> None:
    directory = tmp_path / "fraud"
    write_example("fraud", directory, days=2)
    monkeypatch.delenv("FRAUD_CASES_SECRET", raising=False)  # the demo makes a secret of its own
    settings = load_settings(directory)
    (settings.state_dir).mkdir(parents=True)
    (settings.state_dir / "loopml.db").write_bytes(migrated_store.read_bytes())
    project = Project.open(directory)
    engine = project.store.engine
    try:
        register_version(engine, threshold=0.42)
        scores = [0.1, 0.3, 0.42, 0.5, 0.95, 0.97]
        rows = prediction_rows(len(scores), score=lambda i: scores[i])
        for i, row in enumerate(rows):
            row["inputs"].update(customer_id=100 + i % 5, tx_amount=10.0 * i)  # 0.95 and 0.97: 104, 100
        log_predictions(engine, settings, rows)
        batch = prediction_rows(len(scores), score=lambda i: scores[i])  # the same day, batch-scored
        for row, api in zip(batch, rows, strict=True):
            row["origin"] = "batch"  # a batch frame's integer columns may come back as floats
            row["inputs"] = {k: float(v) for k, v in api["inputs"].items()}
        log_predictions(engine, settings, batch)
        first = run_fraud_actions(project, timeout=60)
        again = run_fraud_actions(project, timeout=60)  # nothing due: nothing re-sent
    finally:
        engine.dispose()
    assert first["cases_received"] == 4  # 0.42, 0.5, 0.95, 0.97: at or above the threshold, once
    assert first["suppressed"] == 4 + 2  # the batch copies: one case per transaction, one block a day
    assert (first["pending"], first["dead"], first["rejected"]) == (0, 0, 0)
    assert first["by_endpoint"]["blocks"]["delivered"] == 2
    assert again["attempts"] == 0 and again["cases_received"] == 4
    with sqlite3.connect(directory / "card_blocks.db") as db:
        blocks = db.execute("SELECT customer_id, score FROM card_blocks ORDER BY customer_id").fetchall()
    assert [(int(c), s) for c, s in blocks] == [(100, 0.97), (104, 0.95)]
    cases = sqlite3.connect(settings.state_dir / "case_receiver.db")
    payloads = [json.loads(p) for (p,) in cases.execute("SELECT payload FROM cases")]
    cases.close()
    assert sorted(p["transaction_id"] for p in payloads) == [2, 3, 4, 5]
    assert all(p["model_version"] == 1 for p in payloads)
