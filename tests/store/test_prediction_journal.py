"""The prediction log's transaction hook, its crash journal and its replay."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from loopml.store import PredictionLogWriter, Store, open_store, tables, utcnow, write_predictions

_hook_log = sa.Table("hook_log", sa.MetaData(), sa.Column("prediction_id", sa.String(36), primary_key=True))


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(store_url, str(tmp_path / "artifacts"))
    _hook_log.create(opened.engine)
    try:
        yield opened
    finally:
        opened.engine.dispose()


def _prediction(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "model_name": "fraud",
        "model_version": 1,
        "created_at": utcnow(),
        "origin": "api",
        "inputs": {"amount": float(i)},
        "score": i / 100,
        "output": {"score": i / 100},
    }


def _record_in_same_transaction(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    connection.execute(sa.insert(_hook_log), [{"prediction_id": r["id"]} for r in rows])


def _ids(store: Store, table: sa.Table, column: str) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(table.c[column])).scalars())


def test_on_write_sees_only_the_rows_inserted(store: Store) -> None:
    first = [_prediction(i) for i in range(3)]
    assert write_predictions(store.engine, first, on_write=_record_in_same_transaction) == 3
    again = [*first[:2], _prediction(9)]  # a replay: two already stored, one new
    seen: list[list[str]] = []

    def hook(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        seen.append([r["id"] for r in rows])
        _record_in_same_transaction(connection, rows)

    assert write_predictions(store.engine, again, on_write=hook) == 1
    assert seen == [[again[2]["id"]]]
    expected = {r["id"] for r in [*first, again[2]]}
    assert _ids(store, tables.predictions, "id") == expected == _ids(store, _hook_log, "prediction_id")
    assert write_predictions(store.engine, again) == 0  # without a hook duplicates are skipped too


def test_a_failing_hook_rolls_the_predictions_back(store: Store) -> None:
    def hook(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        _record_in_same_transaction(connection, rows)
        raise RuntimeError("sink refused")

    with pytest.raises(RuntimeError, match="sink refused"):
        write_predictions(store.engine, [_prediction(1)], on_write=hook)
    assert _ids(store, tables.predictions, "id") == set() == _ids(store, _hook_log, "prediction_id")


def test_writer_runs_the_hook_for_every_batch(store: Store) -> None:
    writer = PredictionLogWriter(
        store.engine, max_batch=50, flush_seconds=0.01, on_write=_record_in_same_transaction
    )
    rows = [_prediction(i) for i in range(120)]
    writer.submit(rows[:70])
    writer.submit(rows[70:])
    writer.close()
    assert writer.written == 120
    assert _ids(store, _hook_log, "prediction_id") == {r["id"] for r in rows}


# -- the journal ------------------------------------------------------------------------------------

_CHILD = """
import os, sys, orjson
from datetime import datetime
from loopml.store.journal import Journal
rows = orjson.loads(sys.stdin.buffer.read())
for row in rows:
    row["created_at"] = datetime.fromisoformat(row["created_at"])
journal = Journal(sys.argv[1])
for start in range(0, len(rows), 7):
    journal.append(rows[start : start + 7])
os.kill(os.getpid(), 9)
"""


def _killed_writer(directory: Path, rows: list[dict[str, Any]]) -> None:
    """A process that journals ``rows`` and is then killed with SIGKILL (no cleanup at all)."""
    import subprocess
    import sys

    import orjson

    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(directory)], input=orjson.dumps(rows), capture_output=True
    )
    assert done.returncode == -9, done.stderr.decode()


def test_a_killed_process_journal_is_replayed_once(store: Store, tmp_path: Path) -> None:
    from loopml.store import replay_journal

    directory = tmp_path / "journal"
    rows = [_prediction(i) for i in range(40)]
    write_predictions(store.engine, rows[:10])  # the dead process had committed these already
    _killed_writer(directory, rows)
    assert len(list(directory.glob("*.jsonl"))) == 1
    seen: list[str] = []

    def hook(connection: Connection, inserted: Sequence[dict[str, Any]]) -> None:
        seen.extend(r["id"] for r in inserted)

    assert replay_journal(store.engine, directory, on_write=hook) == 30
    assert sorted(seen) == sorted(r["id"] for r in rows[10:])
    assert _ids(store, tables.predictions, "id") == {r["id"] for r in rows}
    assert list(directory.glob("*.jsonl")) == []  # replayed segments are removed
    assert replay_journal(store.engine, directory) == 0
    with store.engine.connect() as conn:
        back = conn.execute(
            sa.select(tables.predictions).where(tables.predictions.c.id == rows[20]["id"])
        ).one()
    assert back.inputs == rows[20]["inputs"] and back.output == rows[20]["output"]
    assert back.created_at.replace(tzinfo=None) == rows[20]["created_at"].replace(tzinfo=None)


def test_a_live_writer_journal_is_left_alone_and_emptied_once_stored(store: Store, tmp_path: Path) -> None:
    from loopml.store import replay_journal

    directory = tmp_path / "journal"
    writer = PredictionLogWriter(store.engine, flush_seconds=0.01, journal_dir=directory)
    rows = [_prediction(i) for i in range(25)]
    writer.submit(rows)
    (segment,) = directory.glob("*.jsonl")
    assert segment.stat().st_size > 0 or writer.flush()
    assert replay_journal(store.engine, directory) == 0  # locked by this live writer
    assert writer.flush()
    assert segment.stat().st_size == 0  # everything is in the store: the journal is emptied
    writer.close()
    assert list(directory.iterdir()) == []
    assert _ids(store, tables.predictions, "id") == {r["id"] for r in rows}


def test_segments_rotate_and_go_once_committed(tmp_path: Path) -> None:
    from loopml.store.journal import Journal

    journal = Journal(tmp_path / "j", segment_bytes=2000)
    first = journal.append([_prediction(i) for i in range(20)])  # > 2000 bytes
    journal.committed(first, 10)
    second = journal.append([_prediction(1)])
    assert second is not first and first.path.exists()  # rotated; the old one still has 10 pending
    journal.committed(first, 10)
    assert not first.path.exists()
    journal.committed(second, 1)
    assert second.path.stat().st_size == 0
    journal.close()
    assert list((tmp_path / "j").iterdir()) == []


def test_a_failed_store_write_keeps_the_records_for_replay(store: Store, tmp_path: Path) -> None:
    from loopml.store import replay_journal

    def refuse(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        raise RuntimeError("outbox table missing")

    directory = tmp_path / "journal"
    writer = PredictionLogWriter(store.engine, flush_seconds=0.01, on_write=refuse, journal_dir=directory)
    rows = [_prediction(i) for i in range(5)]
    writer.submit(rows)
    assert writer.flush()
    writer.submit([_prediction(6)])  # goes to a fresh segment
    writer.close()
    assert _ids(store, tables.predictions, "id") == set()
    assert len(list(directory.glob("*.jsonl"))) == 2
    assert replay_journal(store.engine, directory, on_write=_record_in_same_transaction) == 6
    assert _ids(store, _hook_log, "prediction_id") >= {r["id"] for r in rows}


def test_bulk_insert_of_serialized_records(store: Store) -> None:
    from loopml.store import insert_serialized

    rows = [_prediction(i) for i in range(50)]
    rows[3]["score"] = None
    now = utcnow()
    with store.engine.begin() as conn:
        insert_serialized(
            conn,
            model_name="fraud",
            model_version=2,
            created_at=now,
            origin="batch",
            ids=[r["id"] for r in rows],
            inputs=[orjson.dumps(r["inputs"]).decode() for r in rows],
            scores=[r["score"] for r in rows],
            outputs=[orjson.dumps(r["output"]).decode() for r in rows],
        )
    with store.engine.connect() as conn:
        back = {r.id: r for r in conn.execute(sa.select(tables.predictions))}
    assert set(back) == {r["id"] for r in rows}
    for row in rows:
        got = back[row["id"]]
        assert (got.inputs, got.output, got.score) == (row["inputs"], row["output"], row["score"])
        assert (got.origin, got.model_version) == ("batch", 2)
        assert got.created_at.replace(tzinfo=None) == now.replace(tzinfo=None)
