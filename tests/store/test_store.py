"""The metadata store (SQLite and PostgreSQL) and the artifact store, through loopml's public functions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import loopml.store
from loopml import registry, scoring
from loopml.errors import ArtifactIntegrityError, NotFoundError, StoreError
from loopml.store import (
    ArtifactStore,
    PredictionLogWriter,
    Store,
    create_store_engine,
    migrate,
    open_store,
    sha256_bytes,
    tables,
    utcnow,
    write_predictions,
)
from loopml.store.engine import VERSION_TABLE
from loopml.train import finish_run, start_run
from loopml.validate import infer_contract

LOOPML_TABLES = set(tables.metadata.tables)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(store_url, str(tmp_path / "artifacts"))
    try:
        yield opened
    finally:
        opened.engine.dispose()


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(Path(loopml.store.__file__).parent / "migrations"))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return head


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive (they were written in UTC); PostgreSQL hands them back aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# -- opening and migrating -------------------------------------------------------------------------


def test_open_store_migrates_to_head_and_is_idempotent(store_url: str, tmp_path: Path) -> None:
    first = open_store(store_url, str(tmp_path / "artifacts"))
    second = open_store(store_url, str(tmp_path / "artifacts"))  # already at head: a no-op
    try:
        with second.engine.connect() as conn:
            assert MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}
            ).get_current_heads() == (_head(),)
            assert set(sa.inspect(conn).get_table_names()) >= LOOPML_TABLES
        migrate(first.engine)  # and again, explicitly
        with first.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM loopml_alembic_version")).scalar_one() == 1
        assert isinstance(first.artifacts, ArtifactStore)
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_upgrading_an_empty_database_gives_exactly_the_declared_schema(store_url: str) -> None:
    engine = create_store_engine(store_url, upgrade=False)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diffs = compare_metadata(context, tables.metadata)
            inspector = sa.inspect(conn)
            assert set(inspector.get_table_names()) == LOOPML_TABLES | {"loopml_alembic_version"}
            for name, table in tables.metadata.tables.items():
                columns = {c["name"]: c for c in inspector.get_columns(name)}
                assert list(columns) == [c.name for c in table.columns], name
                for column in table.columns:
                    assert columns[column.name]["nullable"] == column.nullable, f"{name}.{column.name}"
        assert diffs == [], f"migrations and loopml.store.tables differ: {diffs}"
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url, str(tmp_path / "artifacts"))
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_postgres_fixture_isolates_each_test_in_its_own_schema(postgres_url: str, tmp_path: Path) -> None:
    store = open_store(postgres_url, str(tmp_path / "artifacts"))
    try:
        with store.engine.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            in_schema = set(
                conn.execute(
                    sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                    {"s": schema},
                ).scalars()
            )
    finally:
        store.engine.dispose()
    assert schema.startswith("t_") and len(schema) == 34
    assert in_schema == LOOPML_TABLES | {"loopml_alembic_version"}


@pytest.mark.parametrize(
    ("url", "start"),
    [
        ("not a url", "store URL 'not a url' is not a valid SQLAlchemy URL"),
        ("nosuchdb://host/db", "store URL 'nosuchdb://host/db' cannot be used"),
        ("postgresql://postgres@127.0.0.1:1/test", "cannot open the metadata store at postgresql+psycopg://"),
    ],
)
def test_bad_db_url_is_a_one_line_store_error(url: str, start: str) -> None:
    with pytest.raises(StoreError) as info:
        create_store_engine(url)
    assert str(info.value).startswith(start)
    assert "\n" not in str(info.value)


def test_sqlite_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"definitely not SQLite " * 100)
    with pytest.raises(StoreError) as info:
        create_store_engine(f"sqlite:///{path}")
    assert str(info.value).startswith(f"cannot open the metadata store at sqlite:///{path}: ")
    assert "\n" not in str(info.value)


def test_sqlite_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        create_store_engine(f"sqlite:///{blocker / 'sub' / 'loopml.db'}")
    assert str(info.value).startswith("cannot create the folder of the SQLite store ")
    assert "\n" not in str(info.value)


# -- registry ---------------------------------------------------------------------------------------


def _training_frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.uniform(0, 100, 20).round(2), "hour": np.arange(20) % 24})
    target = pd.Series((frame["amount"] > 50).astype(int), name="y")
    return frame, target


def _fitted(steps: list[tuple[str, Any]] | None = None) -> Pipeline:
    frame, target = _training_frame()
    pipeline = Pipeline(steps or [("scale", StandardScaler()), ("model", LogisticRegression())])
    return pipeline.fit(frame, target)


def _signature() -> dict[str, Any]:
    frame, target = _training_frame()
    contract = infer_contract(frame.assign(y=target), "tiny", target="y")
    return {"contract": contract.model_dump(), "input_columns": list(frame.columns), "threshold": 0.5}


def test_register_list_get_and_aliases(store: Store) -> None:
    pipeline = _fitted()
    run_id = start_run(store.engine, "fraud", None, {"C": 1.0})
    v1 = registry.register(
        store, "fraud", pipeline, metrics={"ap": 0.5}, signature=_signature(), run_id=run_id
    )
    v2 = registry.register(store, "fraud", _fitted(), metrics={"ap": 0.6}, signature=_signature())
    other = registry.register(store, "churn", pipeline, metrics={}, signature=_signature())

    assert (v1.name, v1.version, v1.run_id, v1.flavor) == ("fraud", 1, run_id, "skops")
    assert (v2.version, v2.run_id, other.version) == (2, None, 1)
    assert v1.metrics == {"ap": 0.5}
    assert v1.signature == _signature()
    assert v1.artifact_key == f"models/fraud/{v1.sha256}.skops"
    assert v1.sha256 == sha256_bytes(store.artifacts.get_bytes(v1.artifact_key))
    assert abs(_utc(v1.created_at) - utcnow()).total_seconds() < 60

    assert [v.version for v in registry.list_versions(store.engine, "fraud")] == [2, 1]
    assert [(v.name, v.version) for v in registry.list_versions(store.engine)] == [
        ("churn", 1),
        ("fraud", 2),
        ("fraud", 1),
    ]
    assert registry.get_version(store.engine, "fraud", 1) == v1

    assert registry.get_alias(store.engine, "fraud", "champion") is None
    first = registry.set_alias(store, "fraud", "champion", 1, reason="first model")
    assert (first.version, first.previous_version, first.actor) == (1, None, "loopml")
    registry.set_alias(store, "fraud", "challenger", 2, reason="new", actor="ci")
    second = registry.set_alias(store, "fraud", "champion", 2, reason="better", actor="alice")
    assert (second.version, second.previous_version) == (2, 1)
    assert registry.get_alias(store.engine, "fraud", "champion") == 2
    assert registry.get_version(store.engine, "fraud", 2).aliases == ("challenger", "champion")
    assert registry.get_version(store.engine, "fraud", 1).aliases == ()

    history = registry.alias_history(store.engine, "fraud", "champion")
    assert [(h.version, h.previous_version, h.reason, h.actor) for h in history] == [
        (1, None, "first model", "loopml"),
        (2, 1, "better", "alice"),
    ]
    assert len(registry.alias_history(store.engine, "fraud")) == 3
    assert registry.alias_history(store.engine, "churn") == []

    assert registry.resolve(store.engine, "fraud", "champion").version == 2
    assert registry.resolve(store.engine, "fraud", "1").version == 1
    assert registry.resolve(store.engine, "fraud", 2).version == 2


def test_registry_not_found_messages(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"^model 'fraud' does not exist; no model is registered yet"):
        registry.get_version(store.engine, "fraud", 1)
    registry.register(store, "fraud", _fitted(), metrics={}, signature=_signature())
    registry.register(store, "fraud", _fitted(), metrics={}, signature=_signature())
    with pytest.raises(NotFoundError) as info:
        registry.get_version(store.engine, "fruad", 1)
    assert str(info.value) == "model 'fruad' does not exist; did you mean 'fraud'?"
    with pytest.raises(NotFoundError) as info:
        registry.get_version(store.engine, "fraud", 9)
    assert str(info.value) == "model 'fraud' has no version 9; versions: 1, 2."
    with pytest.raises(NotFoundError) as info:
        registry.resolve(store.engine, "fraud", "champion")
    assert str(info.value) == "model 'fraud' has no alias 'champion'; versions: 1, 2."
    with pytest.raises(NotFoundError):
        registry.set_alias(store, "fraud", "champion", 3, reason="no such version")
    assert registry.alias_history(store.engine, "fraud") == []


def test_load_model_scores_like_the_pipeline_and_refuses_a_tampered_artifact(
    store: Store, tmp_path: Path
) -> None:
    pipeline = _fitted()
    version = registry.register(store, "fraud", pipeline, metrics={}, signature=_signature())
    registry.set_alias(store, "fraud", "champion", version.version, reason="first")

    loaded = scoring.load_model(store, "fraud")  # the champion by default
    assert loaded.version == registry.get_version(store.engine, "fraud", 1)
    frame, _ = _training_frame()
    np.testing.assert_allclose(loaded.predict_frame(frame), pipeline.predict_proba(frame)[:, 1])
    records = frame.head(3).to_dict(orient="records")
    np.testing.assert_allclose(loaded.predict_records(records), pipeline.predict_proba(frame.head(3))[:, 1])

    artifact = tmp_path / "artifacts" / version.artifact_key
    data = artifact.read_bytes()
    artifact.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # flip one bit
    with pytest.raises(ArtifactIntegrityError, match="fails its SHA-256 check"):
        scoring.load_model(store, "fraud", 1)


class _Untrusted(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A transformer loopml has never heard of: its artifact must not load."""

    def fit(self, x: Any, y: Any = None) -> _Untrusted:
        return self

    def transform(self, x: Any) -> Any:
        return x


def test_load_model_refuses_untrusted_types(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url, str(tmp_path / "artifacts"))
    try:
        pipeline = _fitted([("odd", _Untrusted()), ("model", LogisticRegression())])
        registry.register(store, "odd", pipeline, metrics={}, signature=_signature())
        with pytest.raises(ArtifactIntegrityError, match=r"untrusted type\(s\) .*_Untrusted"):
            scoring.load_model(store, "odd", 1)
    finally:
        store.engine.dispose()


# -- training runs, data set versions, predictions, feedback ------------------------------------------


def test_training_runs(store: Store) -> None:
    ok = start_run(store.engine, "fraud", None, {"C": 1.0})
    bad = start_run(store.engine, "fraud", None, {"C": 2.0})
    assert ok != bad
    tr = tables.training_runs
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(tr).where(tr.c.id == ok)).one()
    assert (row.model_name, row.status, row.params, row.metrics, row.finished_at) == (
        "fraud",
        "running",
        {"C": 1.0},
        None,
        None,
    )
    finish_run(store.engine, ok, metrics={"ap": 0.7}, params={"C": 1.0, "tuned": True})
    finish_run(store.engine, bad, error="out of memory")
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(tr))}
    assert (rows[ok].status, rows[ok].metrics, rows[ok].params, rows[ok].error) == (
        "finished",
        {"ap": 0.7},
        {"C": 1.0, "tuned": True},
        None,
    )
    assert (rows[bad].status, rows[bad].error, rows[bad].params) == ("failed", "out of memory", {"C": 2.0})
    assert _utc(rows[ok].finished_at) >= _utc(rows[ok].started_at)


def _dataset_row(version: int, parent_id: int | None = None) -> dict[str, Any]:
    return {
        "name": "fraud",
        "version": version,
        "content_hash": "ab" * 32,
        "uri": f"datasets/fraud/{version}.parquet",
        "rows": 90,
        "rows_read": 100,
        "rows_quarantined": 10,
        "source": {"kind": "csv", "path": "data.csv", "options": {}},
        "contract_version": 1,
        "parent_id": parent_id,
        "created_at": utcnow(),
    }


def test_dataset_versions_round_trip_and_constraints(store: Store) -> None:
    dv = tables.dataset_versions
    with store.engine.begin() as conn:
        first = conn.execute(sa.insert(dv).returning(dv.c.id), _dataset_row(1)).scalar_one()
        second = conn.execute(sa.insert(dv).returning(dv.c.id), _dataset_row(2, first)).scalar_one()
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(dv).where(dv.c.id == second)).one()
    expected = _dataset_row(2, first)
    for key in ("name", "version", "content_hash", "uri", "rows", "rows_read", "rows_quarantined", "source"):
        assert getattr(row, key) == expected[key], key
    assert row.parent_id == first

    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(dv), _dataset_row(2))  # (name, version) is unique
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(dv), _dataset_row(3, parent_id=9999))  # the parent must exist
    assert _count(store.engine, dv) == 2


def _prediction(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "model_name": "fraud",
        "model_version": 1,
        "created_at": utcnow(),
        "origin": "api" if i % 2 else "batch",
        "inputs": {"amount": float(i), "hour": i % 24, "note": None},
        "score": i / 1000,
        "output": {"score": i / 1000, "label": int(i > 500)},
    }


def test_write_predictions_and_feedback_round_trip(store: Store) -> None:
    rows = [_prediction(i) for i in range(5)]
    write_predictions(store.engine, rows)
    write_predictions(store.engine, [])  # nothing to do
    p = tables.predictions
    with store.engine.connect() as conn:
        back = {r.id: r for r in conn.execute(sa.select(p))}
    assert set(back) == {r["id"] for r in rows}
    for row in rows:
        got = back[row["id"]]
        for key in ("model_name", "model_version", "origin", "inputs", "score", "output"):
            assert getattr(got, key) == row[key], key
        assert _utc(got.created_at) == row["created_at"]

    fb = tables.feedback
    received = utcnow()
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(fb), [{"prediction_id": r["id"], "label": 1, "received_at": received} for r in rows[:3]]
        )
        conn.execute(
            sa.insert(fb), {"prediction_id": rows[3]["id"], "label": {"rul": 12.5}, "received_at": received}
        )
    with store.engine.connect() as conn:
        joined = conn.execute(
            sa.select(p.c.id, p.c.score, fb.c.label, fb.c.received_at)
            .join(fb, fb.c.prediction_id == p.c.id)
            .order_by(fb.c.id)
        ).all()
    assert [(r.id, r.label) for r in joined] == [
        (rows[0]["id"], 1),
        (rows[1]["id"], 1),
        (rows[2]["id"], 1),
        (rows[3]["id"], {"rul": 12.5}),
    ]
    assert all(_utc(r.received_at) == received for r in joined)


def test_prediction_log_writer_drains_everything_on_close(store: Store) -> None:
    writer = PredictionLogWriter(store.engine, max_batch=100, flush_seconds=0.05)
    submitted = [_prediction(i) for i in range(1234)]
    for start in range(0, len(submitted), 300):
        writer.submit(submitted[start : start + 300])
    writer.close()
    assert not writer._thread.is_alive()
    assert writer.written == 1234
    assert _count(store.engine, tables.predictions) == 1234
    with store.engine.connect() as conn:
        ids = set(conn.execute(sa.select(tables.predictions.c.id)).scalars())
    assert ids == {row["id"] for row in submitted}


def test_prediction_log_writer_with_nothing_submitted(store: Store) -> None:
    writer = PredictionLogWriter(store.engine)
    writer.close()
    assert writer.written == 0
    assert _count(store.engine, tables.predictions) == 0


# -- artifact store -------------------------------------------------------------------------------


def test_artifact_store_put_get_exists(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "a")
    assert not artifacts.exists("models/m/1/model.bin")
    digest = artifacts.put_bytes("models/m/1/model.bin", b"\x00hello")
    assert digest == sha256_bytes(b"\x00hello")
    assert artifacts.exists("models/m/1/model.bin")
    assert artifacts.get_bytes("models/m/1/model.bin") == b"\x00hello"
    assert artifacts.get_bytes("models/m/1/model.bin", sha256=digest) == b"\x00hello"
    assert (tmp_path / "a" / "models" / "m" / "1" / "model.bin").read_bytes() == b"\x00hello"
    assert [p.name for p in (tmp_path / "a" / "models" / "m" / "1").iterdir()] == [
        "model.bin"
    ]  # no temp left
    assert artifacts.uri("x/y") == f"{tmp_path / 'a'}/x/y"

    with artifacts.open("reports/r.txt", "wb") as fh:
        fh.write(b"streamed")
    with artifacts.open("reports/r.txt") as fh:
        assert fh.read() == b"streamed"


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "/etc/passwd", "a/.."])
def test_artifact_keys_may_not_escape_the_root(tmp_path: Path, key: str) -> None:
    artifacts = ArtifactStore(tmp_path / "a")
    with pytest.raises(ValueError, match=r"must be a relative path without '\.\.'"):
        artifacts.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        artifacts.get_bytes(key)
    assert not (tmp_path / "escape").exists()


def test_artifact_sha_mismatch_and_missing(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "a")
    artifacts.put_bytes("k.bin", b"original")
    with pytest.raises(ArtifactIntegrityError, match="fails its SHA-256 check") as info:
        artifacts.get_bytes("k.bin", sha256=sha256_bytes(b"something else"))
    assert info.value.code == "artifact_integrity"
    with pytest.raises(NotFoundError, match="does not exist"):
        artifacts.get_bytes("missing.bin")
