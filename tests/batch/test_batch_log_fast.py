"""Batch scoring's fast prediction log: exact JSON, the actions hook in the same transaction, and a
window history that stays bounded however many rows stream through."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from loopml.batch import score_file
from loopml.batch.log import json_records
from loopml.features.windows import EntityHistory, WindowSpec
from loopml.project import Project
from loopml.store import tables


def test_json_records_are_exact_json_of_each_row() -> None:
    frame = pd.DataFrame(
        {
            "amount": [1.5, np.nan, 0.1 + 0.2],
            "count%": [1, 2, 3],
            "when": pd.to_datetime(["2026-01-01 10:00:00", None, "2026-01-02 00:00:00"]),
            "stamp": pd.to_datetime(
                ["2026-01-01T10:00:00+01:00", None, "2026-01-02T00:00:00.5Z"], utc=True, format="ISO8601"
            ),
            "text": ['a,"b"}{', None, "é\n"],
            "kind": pd.Categorical(["u", "v", None]),
            "maybe": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
        }
    )
    rows = [orjson.loads(text) for text in json_records(frame)]
    assert rows == [
        {
            "amount": 1.5,
            "count%": 1,
            "when": "2026-01-01T10:00:00",
            "stamp": "2026-01-01T09:00:00.000000",
            "text": 'a,"b"}{',
            "kind": "u",
            "maybe": 1,
            "flag": True,
        },
        {
            "amount": None,
            "count%": 2,
            "when": None,
            "stamp": None,
            "text": None,
            "kind": "v",
            "maybe": None,
            "flag": False,
        },
        {
            "amount": 0.30000000000000004,  # shortest exact digits, as orjson/json write it
            "count%": 3,
            "when": "2026-01-02T00:00:00",
            "stamp": "2026-01-02T00:00:00.500000",
            "text": "é\n",
            "kind": None,
            "maybe": 3,
            "flag": True,
        },
    ]
    assert json_records(frame.iloc[:0]) == []


def test_bulk_inserted_records_read_back_exactly(store_url: str, tmp_path: Path) -> None:
    """The bulk path (one ``json_each`` statement on SQLite, ``COPY`` on PostgreSQL) stores what
    the per-row path would: the same JSON values, exact floats, ids in any order."""
    from loopml.store import insert_serialized, open_store, utcnow

    frame = pd.DataFrame(
        {"amount": [0.1 + 0.2, np.nan, 1e-300], "text": ['a,"b"}{', "é\n", None], "n": [3, 2, 1]}
    )
    ids = ["0000000c", "0000000a", "0000000b"]  # not in order
    scores = [0.30000000000000004, None, 5e-324]
    store = open_store(store_url, str(tmp_path / "artifacts"))
    try:
        with store.engine.begin() as conn:
            insert_serialized(
                conn,
                model_name="m",
                model_version=3,
                created_at=utcnow(),
                origin="batch",
                ids=ids,
                inputs=json_records(frame),
                scores=scores,
                outputs=json_records(frame[["n"]]),
            )
        p = tables.predictions
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(p.c.id, p.c.inputs, p.c.score, p.c.output, p.c.model_version)).all()
    finally:
        store.engine.dispose()
    stored = {r.id: (r.inputs, r.score, r.output, r.model_version) for r in rows}
    for pid, record, score, n in zip(ids, frame.to_dict("records"), scores, frame["n"], strict=True):
        expected = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
        assert stored[pid] == (expected, score, {"n": n}, 3)


def test_forgetting_unreachable_events_changes_no_feature_and_bounds_memory() -> None:
    spec = WindowSpec(entity="card", column="amount", aggs=("count", "sum", "max"), windows=("1h", "1d"))
    rng = np.random.default_rng(3)
    n = 6000
    events = pd.DataFrame(
        {
            "id": np.arange(n, dtype=float),
            "t": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 20 * 86400, n)), "s"),
            "card": rng.integers(0, 30, n).astype(float),
            "amount": rng.gamma(2.0, 10.0, n),
        }
    )
    keep_all, bounded = EntityHistory([spec], "t", "id"), EntityHistory([spec], "t", "id")
    sizes = []
    for chunk in (events.iloc[i : i + 300] for i in range(0, n, 300)):
        earliest = int(chunk["t"].min().value // 1_000_000)
        bounded.forget_before(earliest - 2 * bounded.reach_ms)
        for history in (keep_all, bounded):
            history.extend(chunk)
        pd.testing.assert_frame_equal(bounded.features(chunk), keep_all.features(chunk), check_exact=True)
        sizes.append(sum(len(e.times) for e in bounded._events[spec].values()))
    assert bounded.reach_ms == 86_400_000
    assert max(sizes) < n / 5  # three days of events at most, not twenty
    assert len(bounded._seen) == sizes[-1]  # forgotten ids leave the de-duplication set too


def test_the_actions_hook_runs_in_each_chunk_transaction(
    batch_project: Project, holdout_parquet: Path, tmp_path: Path
) -> None:
    engine = batch_project.store.engine
    hooked = sa.Table("hooked", sa.MetaData(), sa.Column("prediction_id", sa.String(36), primary_key=True))
    hooked.create(engine, checkfirst=True)
    model = batch_project.models.load()
    seen: list[dict[str, Any]] = []

    def hook(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        seen.extend(rows)
        connection.execute(sa.insert(hooked), [{"prediction_id": r["id"]} for r in rows])

    result = score_file(
        batch_project.store, model, holdout_parquet, tmp_path / "a.parquet", chunk_rows=100, on_write=hook
    )
    ids = pd.read_parquet(result.output)["prediction_id"].tolist()
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(hooked.c.prediction_id)).scalars()) == set(ids)
    first = seen[0]
    assert (
        first["origin"] == "batch"
        and first["model_name"] == "fraud"
        and first["score"] == first["output"]["score"]
    )
    assert set(first["inputs"]) == {"transaction_id", *model.input_columns}

    def refuse(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        raise RuntimeError("outbox refused")

    with pytest.raises(RuntimeError, match="outbox refused"):
        score_file(
            batch_project.store,
            model,
            holdout_parquet,
            tmp_path / "b.parquet",
            chunk_rows=100,
            on_write=refuse,
        )
    p = tables.predictions
    with engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(p)).scalar_one()
    assert logged == len(ids)  # the refused chunk's predictions were rolled back with its actions
