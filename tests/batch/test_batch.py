"""Batch scoring: files in, files out, through the same LoadedModel as the API (and the same scores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import select

from loopml.batch import score_file
from loopml.errors import InputError
from loopml.project import Project
from loopml.serve import BackgroundServer
from loopml.store import tables

OUTPUT_COLUMNS = ["prediction_id", "transaction_id", "score", "label", "model_version"]


def json_records(rows: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, as a client would send them (timestamps in ISO 8601)."""
    out: list[dict[str, Any]] = []
    for rec in rows[columns].to_dict("records"):
        out.append({k: v.isoformat() if isinstance(v, pd.Timestamp) else v for k, v in rec.items()})
    return out


def scores_by_id(frame: pd.DataFrame) -> dict[int, tuple[float, int]]:
    return {
        int(t): (float(s), int(lbl))
        for t, s, lbl in zip(frame["transaction_id"], frame["score"], frame["label"], strict=True)
    }


def test_api_predictions_equal_batch_predictions_exactly(
    batch_project: Project, holdout_rows: pd.DataFrame, holdout_parquet: Path, tmp_path: Path
) -> None:
    model = batch_project.models.load()
    records = json_records(holdout_rows, ["transaction_id", *model.input_columns])
    url = "/v1/models/fraud/predict"
    api: dict[int, tuple[float, int]] = {}
    server = BackgroundServer(batch_project.app())
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        # One record per request, small lists, and a list of >= 256 records (LightGBM's threaded path).
        singles, small, large = records[:30], records[30:40], records[40:]
        assert len(large) >= 256
        requests = [[r] for r in singles] + [small, large]
        for chunk in requests:
            response = client.post(url, json=chunk if len(chunk) > 1 else chunk[0])
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_version"] == 1
            for rec, prediction in zip(chunk, body["predictions"], strict=True):
                api[rec["transaction_id"]] = (prediction["score"], prediction["label"])
    output = tmp_path / "scored.parquet"
    result = batch_project.predictions.predict_file(holdout_parquet, output)
    assert result.rows == len(holdout_rows) and result.model_version == 1 and result.output == str(output)
    scored = pd.read_parquet(output)
    assert list(scored.columns) == OUTPUT_COLUMNS
    batch = scores_by_id(scored)
    assert len(api) == len(batch) == len(holdout_rows)
    assert api == batch  # exact equality, score by score
    assert len({s for s, _ in batch.values()}) > 10, "scores should vary across 300 holdout rows"


def test_csv_input_and_output(
    batch_project: Project, holdout_rows: pd.DataFrame, holdout_parquet: Path, tmp_path: Path
) -> None:
    csv_in = tmp_path / "rows.csv"
    holdout_rows.to_csv(csv_in, index=False)
    from_parquet = pd.read_parquet(
        batch_project.predictions.predict_file(holdout_parquet, tmp_path / "p.parquet").output
    )

    result = batch_project.predictions.predict_file(csv_in, tmp_path / "out" / "scored.csv")
    assert result.rows == len(holdout_rows)
    from_csv = pd.read_csv(result.output)
    assert list(from_csv.columns) == OUTPUT_COLUMNS
    assert from_csv["prediction_id"].is_unique
    assert scores_by_id(from_csv) == scores_by_id(from_parquet)

    mixed = pd.read_parquet(
        batch_project.predictions.predict_file(csv_in, tmp_path / "csv_to.parquet").output
    )
    assert scores_by_id(mixed) == scores_by_id(from_parquet)


def test_bad_file_names_are_input_errors(
    batch_project: Project, holdout_parquet: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"\.parquet or \.csv"):
        batch_project.predictions.predict_file(holdout_parquet, tmp_path / "scored.json")
    assert not (tmp_path / "scored.json").exists()
    text = tmp_path / "rows.txt"
    text.write_text("tx_amount\n1\n")
    with pytest.raises(InputError, match=r"\.csv or \.parquet"):
        batch_project.predictions.predict_file(text, tmp_path / "scored.parquet")


def test_missing_input_column_is_an_input_error(
    batch_project: Project, holdout_rows: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "no_amount.parquet"
    holdout_rows.drop(columns=["tx_amount"]).to_parquet(path, index=False)
    with pytest.raises(InputError, match="tx_amount"):
        batch_project.predictions.predict_file(path, tmp_path / "scored.parquet")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_chunking_gives_the_same_result(
    batch_project: Project, holdout_parquet: Path, holdout_rows: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    model = batch_project.models.load()
    store = batch_project.store
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    one = score_file(store, model, holdout_parquet, tmp_path / f"one{suffix}", log_predictions=False)
    many = score_file(
        store, model, holdout_parquet, tmp_path / f"seven{suffix}", chunk_rows=7, log_predictions=False
    )
    assert one.rows == many.rows == len(holdout_rows)
    whole, chunked = read(one.output), read(many.output)
    assert len(chunked) == len(holdout_rows)  # a CSV written in chunks has one header
    assert list(chunked.columns) == OUTPUT_COLUMNS
    assert chunked["transaction_id"].tolist() == holdout_rows["transaction_id"].tolist()  # order kept
    assert chunked["transaction_id"].dtype == holdout_rows["transaction_id"].dtype == "int64"  # as read
    cols = ["transaction_id", "score", "label", "model_version"]
    pd.testing.assert_frame_equal(chunked[cols], whole[cols], check_exact=True)
    assert chunked["prediction_id"].is_unique
    assert not set(chunked["prediction_id"]) & set(whole["prediction_id"])


def test_batch_predictions_are_logged(batch_project: Project, holdout_parquet: Path, tmp_path: Path) -> None:
    model = batch_project.models.load()
    output = tmp_path / "scored.parquet"
    result = score_file(batch_project.store, model, holdout_parquet, output, chunk_rows=100)
    scored = pd.read_parquet(result.output)
    source = pd.read_parquet(holdout_parquet).set_index("transaction_id")
    predictions = tables.predictions
    with batch_project.store.engine.connect() as conn:
        query = select(predictions).where(predictions.c.id.in_(scored["prediction_id"].tolist()))
        rows = {r.id: r for r in conn.execute(query)}
    assert len(rows) == len(scored) == result.rows
    for out in scored.itertuples():
        row = rows[out.prediction_id]
        assert row.origin == "batch"
        assert row.model_name == "fraud" and row.model_version == 1
        assert row.score == out.score
        assert row.output == {"score": out.score, "label": out.label}
        # The inputs are the model's input columns (and the id): never the target or other columns.
        assert set(row.inputs) == {"transaction_id", *model.input_columns}
        assert row.inputs["transaction_id"] == out.transaction_id
        for column in model.input_columns:
            expected = source.at[out.transaction_id, column]
            if isinstance(expected, pd.Timestamp):
                assert pd.Timestamp(row.inputs[column]) == expected
            else:
                assert row.inputs[column] == expected


def test_logging_can_be_turned_off(batch_project: Project, holdout_parquet: Path, tmp_path: Path) -> None:
    result = score_file(
        batch_project.store,
        batch_project.models.load(),
        holdout_parquet,
        tmp_path / "scored.parquet",
        log_predictions=False,
    )
    ids = pd.read_parquet(result.output)["prediction_id"].tolist()
    predictions = tables.predictions
    with batch_project.store.engine.connect() as conn:
        found = conn.execute(select(predictions.c.id).where(predictions.c.id.in_(ids))).fetchall()
    assert found == []
