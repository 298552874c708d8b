"""Batch scoring on a Dask LocalCluster equals the local batch and the API, row by row.

The rows are new events (not in the training snapshot), sorted by event time, on cards and
terminals with history, so their window features depend on the snapshot *and* on the earlier new
events: a partition that did not see the partitions before it would get different scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from loopml.batch import score_file, score_file_dask
from loopml.cli import app
from loopml.errors import InputError
from loopml.project import Project
from loopml.serve import BackgroundServer
from loopml.store import tables
from loopml.validate import load_snapshot

pytest.importorskip("distributed")

COLUMNS = ["transaction_id", "score", "label", "model_version"]


@pytest.fixture(scope="module")
def new_events(batch_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The snapshot's last 400 events replayed 2 days after it ends, with new ids, sorted by time."""
    _, frame = load_snapshot(batch_project.store, batch_project.name)
    frame = frame.sort_values(["tx_datetime", "transaction_id"])
    events = frame.tail(400).copy()
    shift = frame["tx_datetime"].max() - events["tx_datetime"].min() + pd.Timedelta("2D")
    events["tx_datetime"] += shift
    events["transaction_id"] = frame["transaction_id"].max() + 1 + pd.RangeIndex(len(events))
    path = tmp_path_factory.mktemp("new") / "events.parquet"
    events.reset_index(drop=True).to_parquet(path, index=False, row_group_size=100)
    return path


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path).reset_index(drop=True)


def test_dask_equals_local_batch_equals_api(
    batch_project: Project, new_events: Path, dask_client: Any, tmp_path: Path
) -> None:
    store = batch_project.store
    local = score_file(
        store, batch_project.models.load(), new_events, tmp_path / "local.parquet", log_predictions=False
    )
    chunked = score_file(
        store,
        batch_project.models.load(),
        new_events,
        tmp_path / "chunked.parquet",
        chunk_rows=7,
        log_predictions=False,
    )
    on_dask = score_file_dask(
        store,
        batch_project.models.load(),
        new_events,
        tmp_path / "dask",
        address=dask_client,
        chunk_rows=60,
        log_predictions=False,
    )
    assert on_dask.partitions == 7 == len(list((tmp_path / "dask").glob("part-*.parquet")))
    want, got = _read(local.output), _read(on_dask.output)
    assert local.rows == on_dask.rows == len(got) == 400
    pd.testing.assert_frame_equal(got[COLUMNS], want[COLUMNS], check_exact=True)
    pd.testing.assert_frame_equal(_read(chunked.output)[COLUMNS], want[COLUMNS], check_exact=True)
    assert got["prediction_id"].is_unique and not set(got["prediction_id"]) & set(want["prediction_id"])

    # The earlier new events matter: scored alone (history = snapshot only), many rows differ.
    alone = batch_project.models.load()
    rows = pd.read_parquet(new_events)
    isolated = [float(alone.predict_frame(rows.iloc[[i]], observe=False)[0]) for i in range(300, 400)]
    assert sum(a != b for a, b in zip(isolated, want["score"][300:], strict=True)) >= 5

    # The API, sent the first 120 events one at a time in time order, gives the same scores.
    api = _api_scores(batch_project, rows.head(120))
    expected = zip(want["score"].head(120), want["label"].head(120), strict=True)
    assert api == [(float(s), int(lbl)) for s, lbl in expected]


def _api_scores(project: Project, rows: pd.DataFrame) -> list[tuple[float, int]]:
    columns = ["transaction_id", *project.models.load().input_columns]
    out: list[tuple[float, int]] = []
    server = BackgroundServer(project.app())
    with server, httpx.Client(base_url=server.url, timeout=30) as http:
        for rec in rows[columns].to_dict("records"):
            body = {k: v.isoformat() if isinstance(v, pd.Timestamp) else v for k, v in rec.items()}
            response = http.post("/v1/models/fraud/predict", json=body)
            assert response.status_code == 200, response.text
            prediction = response.json()["predictions"][0]
            out.append((prediction["score"], prediction["label"]))
    return out


def test_dask_logs_every_prediction_once(
    batch_project: Project, new_events: Path, dask_client: Any, tmp_path: Path
) -> None:
    seen: list[int] = []
    result = batch_project.predictions.predict_file(
        new_events, tmp_path / "out", dask=dask_client, progress=seen.append
    )
    scored = _read(result.output)
    assert sum(seen) == result.rows == len(scored) == 400
    p = tables.predictions
    with batch_project.store.engine.connect() as conn:
        ids = scored["prediction_id"].tolist()
        logged = conn.execute(select(p.c.id, p.c.score, p.c.origin).where(p.c.id.in_(ids))).fetchall()
        new = p.c.inputs["transaction_id"].as_integer().in_(scored["transaction_id"].tolist())
        batch = (p.c.origin == "batch") & new
        per_event = conn.execute(select(func.count()).select_from(p).where(batch)).scalar_one()
    assert len(logged) == len(ids) and {row.origin for row in logged} == {"batch"}
    assert {row.id: row.score for row in logged} == dict(zip(ids, scored["score"], strict=True))
    assert per_event == 400  # each event logged once: no partition was logged twice


def test_cli_predict_on_a_dask_scheduler(
    batch_project: Project, new_events: Path, dask_cluster: Any, tmp_path: Path
) -> None:
    directory = batch_project.settings.project_dir
    out = tmp_path / "cli"
    args = ["predict", "-p", str(directory), "-i", str(new_events), "-o", str(out), "--json"]
    result = CliRunner().invoke(app, [*args, "--dask", dask_cluster.scheduler_address])
    assert result.exit_code == 0, result.output
    assert '"rows": 400' in result.output and '"partitions": 1' in result.output
    local = batch_project.predictions.predict_file(new_events, tmp_path / "local.parquet")
    cols = ["transaction_id", "score", "label"]
    pd.testing.assert_frame_equal(_read(str(out))[cols], _read(local.output)[cols], check_exact=True)


def test_dask_output_must_be_a_new_folder(
    batch_project: Project, new_events: Path, dask_client: Any, tmp_path: Path
) -> None:
    model = batch_project.models.load()
    with pytest.raises(InputError, match="must be a folder"):
        score_file_dask(batch_project.store, model, new_events, tmp_path / "out.csv", address=dask_client)
    done = score_file_dask(batch_project.store, model, new_events, tmp_path / "twice", address=dask_client)
    assert done.partitions == 1
    with pytest.raises(InputError, match="already holds"):
        score_file_dask(batch_project.store, model, new_events, tmp_path / "twice", address=dask_client)
