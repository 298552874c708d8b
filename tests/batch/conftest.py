"""Fixtures for the batch-scoring tests: one small fraud project, trained once per module."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopml.examples import write_example
from loopml.project import Project
from loopml.validate import load_snapshot


@pytest.fixture(scope="module")
def batch_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The fraud example (30 days, 20 trees, one thread), ingested and trained: version 1 is champion."""
    directory = tmp_path_factory.mktemp("batch") / "proj"
    write_example("fraud", directory, days=30)
    config = directory / "loopml.yaml"
    text = config.read_text(encoding="utf-8")
    assert "n_estimators: 200" in text, "the fraud template changed; update the test helper"
    config.write_text(text.replace("n_estimators: 200", "n_estimators: 20\n    n_jobs: 1"), encoding="utf-8")
    project = Project.open(directory, environ={})  # LOOPML_* variables must not move the stores
    project.ingest()
    assert project.train().version.version == 1
    return project


@pytest.fixture(scope="module")
def holdout_rows(batch_project: Project) -> pd.DataFrame:
    """300 rows of the holdout period (never trained on), spread over it, largest amounts included."""
    _, frame = load_snapshot(batch_project.store, batch_project.name)
    start = pd.Timestamp(batch_project.models.load().version.metrics["holdout_start"])
    holdout = frame[frame["tx_datetime"] >= start]
    step = max(1, len(holdout) // 290)
    picked = pd.concat([holdout.iloc[::step].head(290), holdout.nlargest(10, "tx_amount")])
    rows = picked.drop_duplicates("transaction_id").reset_index(drop=True)
    assert len(rows) >= 290
    return rows


@pytest.fixture(scope="module")
def holdout_parquet(holdout_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "rows.parquet"
    holdout_rows.to_parquet(path, index=False)
    return path
