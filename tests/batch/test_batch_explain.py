"""Batch scoring with explanations (``predict_file(..., explain=True)``, ``loopml predict --explain``):
extra ``explain_*`` columns that add up to each row's raw score, the same scores as without, locally
and on Dask, and a prediction log that does not keep them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from typer.testing import CliRunner

from loopml.cli import app
from loopml.project import Project
from loopml.store import tables

EXPLAIN_COLUMNS = ["explain_raw_score", "explain_base_value", "explain_class"]


def ranked(k: int) -> list[str]:
    return [f"explain_{i}_{part}" for i in range(1, k + 1) for part in ("feature", "contribution")]


def check_explained(frame: pd.DataFrame, k: int) -> None:
    assert list(frame.columns[-(len(EXPLAIN_COLUMNS) + 2 * k + 1) :]) == [
        *EXPLAIN_COLUMNS,
        *ranked(k),
        "explain_rest",
    ]
    contributions = frame[[f"explain_{i}_contribution" for i in range(1, k + 1)]].to_numpy()
    total = frame["explain_base_value"] + contributions.sum(axis=1) + frame["explain_rest"]
    assert np.abs(total - frame["explain_raw_score"]).max() <= 1e-6
    probability = 1 / (1 + np.exp(-frame["explain_raw_score"].to_numpy()))
    assert np.allclose(probability, frame["score"], rtol=1e-9, atol=1e-12)  # log-odds of the score
    magnitudes = np.abs(contributions)
    assert (np.diff(magnitudes, axis=1) <= 0).all()  # largest first
    assert (frame["explain_class"] == 1).all()
    assert not frame[ranked(k)[::2]].isin(["tx_datetime_hour", "tx_datetime_dayofweek"]).any().any()


def test_predict_file_explain_adds_columns_that_add_up(
    batch_project: Project, holdout_parquet: Path, tmp_path: Path
) -> None:
    plain = batch_project.predictions.predict_file(
        holdout_parquet, tmp_path / "plain.parquet", log_predictions=False
    )
    explained = batch_project.predictions.predict_file(
        holdout_parquet, tmp_path / "explained.parquet", explain=True, explain_k=3
    )
    assert explained.rows == plain.rows >= 290
    before, after = (
        pd.read_parquet(tmp_path / "plain.parquet"),
        pd.read_parquet(tmp_path / "explained.parquet"),
    )
    assert list(after.columns[: len(before.columns)]) == list(before.columns)  # the same output, then more
    assert after["score"].tolist() == before["score"].tolist()
    check_explained(after, 3)
    ids = after["prediction_id"].head(20).tolist()
    p = tables.predictions
    with batch_project.store.engine.connect() as conn:
        outputs = conn.execute(select(p.c.output).where(p.c.id.in_(ids))).scalars().all()
    assert len(outputs) == 20 and not any(key.startswith("explain") for o in outputs for key in o)


def test_cli_predict_explain_writes_the_columns(
    batch_project: Project, holdout_parquet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "-i",
            str(holdout_parquet),
            "-o",
            str(out),
            "--explain",
            "--explain-k",
            "2",
            "--project",
            str(batch_project.directory),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["rows"] >= 290
    check_explained(pd.read_csv(out), 2)


def test_explain_on_dask_equals_local(
    batch_project: Project, holdout_parquet: Path, dask_client: Any, tmp_path: Path
) -> None:
    batch_project.predictions.predict_file(
        holdout_parquet, tmp_path / "local.parquet", explain=True, log_predictions=False
    )
    batch_project.predictions.predict_file(
        holdout_parquet, tmp_path / "parts", explain=True, log_predictions=False, dask=dask_client
    )
    local = pd.read_parquet(tmp_path / "local.parquet").drop(columns="prediction_id")
    parts = pd.read_parquet(tmp_path / "parts").drop(columns="prediction_id")
    key = "transaction_id"
    local, parts = (
        local.sort_values(key).reset_index(drop=True),
        parts.sort_values(key).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(parts, local, check_dtype=False)
    check_explained(local, 5)


def test_cli_explains_a_logged_prediction(batch_project: Project, holdout_rows: pd.DataFrame) -> None:
    record = holdout_rows.drop(columns=["tx_fraud"]).iloc[0].to_dict()
    [prediction] = batch_project.predictions.predict_records([record], explain=True, explain_k=4)
    assert prediction.explanation is not None
    runner, where = CliRunner(), str(batch_project.directory)
    args = ["predictions", "explain", prediction.prediction_id, "--k", "4", "--project", where, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.splitlines()[-1])
    assert body["prediction_id"] == prediction.prediction_id and body["model_version"] == 1
    assert body["explanation"] == prediction.explanation.to_dict()  # scored again, the same numbers
    text = runner.invoke(app, ["predictions", "explain", prediction.prediction_id, "--project", where])
    assert text.exit_code == 0 and "base value" in text.stdout and "raw score" in text.stdout
    missing = runner.invoke(app, ["predictions", "explain", "no-such-id", "--project", where])
    assert missing.exit_code == 5 and len(missing.output.strip().splitlines()) == 1
    assert "'no-such-id' is not in the prediction log" in missing.output
