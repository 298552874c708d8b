"""The whole thin loop, for real: ``loopml demo fraud --json`` in a child process (default data size)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUMMARY_KEYS = {
    "rows", "model_version", "holdout_roc_auc", "holdout_average_precision", "requests", "p50_ms", "p99_ms",
    "failed_requests", "api_equals_batch", "predictions_logged",
}  # fmt: skip


@pytest.mark.slow
def test_demo_fraud_end_to_end(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    # LOOPML_* overrides (other than the test suite's own) would move the demo's stores out of the project.
    env = {k: v for k, v in os.environ.items() if k.startswith("LOOPML_TEST_") or not k.startswith("LOOPML")}
    done = subprocess.run(
        [sys.executable, "-m", "loopml", "demo", "fraud", "--json", "--project", str(project)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout[-3000:]
    summary = json.loads(lines[0])
    assert set(summary) >= SUMMARY_KEYS, sorted(SUMMARY_KEYS - set(summary))

    # ~300k simulated transactions over 182 days; the project ingests the history before the fraud
    # pattern changes (day 119, ~197k rows) and keeps the rest in data/replay.parquet for the API.
    assert summary["rows"] > 150_000
    assert summary["model_version"] == 1
    assert 0.5 < summary["holdout_roc_auc"] <= 1.0
    assert 0.0 < summary["holdout_average_precision"] <= 1.0
    assert summary["requests"] > 500  # one real HTTP request per transaction of a held-out day
    assert summary["failed_requests"] == 0
    assert 0.0 < summary["p50_ms"] <= summary["p99_ms"]
    assert summary["api_equals_batch"] is True
    assert summary["predictions_logged"] == summary["requests"]
    assert (project / "loopml.yaml").is_file()
    assert (project / ".loopml" / "loopml.db").is_file()
