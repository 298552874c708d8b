"""The ``sql`` action: upserts and idempotent inserts on SQLite and the real PostgreSQL, both the
native ``ON CONFLICT`` path and the portable select-then-write path, and its failure modes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopml.actions.base import Delivery, DeliveryError
from loopml.actions.sql import SqlAction
from loopml.errors import ConfigError


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'erp.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = _engine(url)
    with engine.connect() as conn:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        rows = [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(next(iter(t.c))))]
    engine.dispose()
    return rows


def _delivery(key: str, **payload: Any) -> Delivery:
    return Delivery(key, "blocks", "block-card", payload, datetime(2026, 11, 27, tzinfo=UTC))


def _send(options: dict[str, Any], *deliveries: Delivery) -> None:
    action = SqlAction("blocks", options)
    try:
        for delivery in deliveries:
            action.send(delivery)
    finally:
        action.close()


def test_upsert_creates_then_updates_the_row_of_each_key(db_url: str) -> None:
    options = {
        "url": db_url,
        "table": "card_blocks",
        "mode": "upsert",
        "key": ["card_id"],
        "create": True,
        "key_column": "action_key",
    }
    _send(options, _delivery("a1", card_id="c-1", score=0.7), _delivery("a2", card_id="c-2", score=0.8))
    _send(options, _delivery("a3", card_id="c-1", score=0.95), _delivery("a3", card_id="c-1", score=0.95))
    assert _rows(db_url, "card_blocks") == [
        {"card_id": "c-1", "action_key": "a3", "score": 0.95},
        {"card_id": "c-2", "action_key": "a2", "score": 0.8},
    ]


def test_a_created_key_column_keeps_the_payload_type(db_url: str) -> None:
    options = {"url": db_url, "table": "blocks", "mode": "upsert", "key": ["customer_id"], "create": True}
    _send(options, _delivery("a1", customer_id=7, score=0.9), _delivery("a2", customer_id=7, score=0.95))
    assert _rows(db_url, "blocks") == [{"customer_id": 7, "score": 0.95}]
    engine = _engine(db_url)
    with engine.connect() as conn:
        [kind] = [c["type"] for c in sa.inspect(conn).get_columns("blocks") if c["name"] == "customer_id"]
    engine.dispose()
    assert isinstance(kind, sa.Integer)


def test_a_table_without_unique_constraints_uses_the_portable_path(db_url: str) -> None:
    engine = _engine(db_url)
    meta = sa.MetaData()
    sa.Table(
        "cases",
        meta,
        sa.Column("case_id", sa.Text),
        sa.Column("status", sa.Text),
        sa.Column("loopml_key", sa.Text),
    )
    sa.Table("blocks", meta, sa.Column("card_id", sa.Text), sa.Column("status", sa.Text))
    meta.create_all(engine)
    engine.dispose()
    inserts = {"url": db_url, "table": "cases"}
    _send(inserts, _delivery("k1", case_id="x", status="open"), _delivery("k1", case_id="x", status="open"))
    _send(inserts, _delivery("k1", case_id="x", status="open"), _delivery("k2", case_id="x", status="open"))
    assert [r["loopml_key"] for r in _rows(db_url, "cases")] == ["k1", "k2"]
    upserts = {"url": db_url, "table": "blocks", "mode": "upsert", "key": "card_id"}
    _send(upserts, _delivery("k1", card_id="c", status="new"), _delivery("k2", card_id="c", status="blocked"))
    assert _rows(db_url, "blocks") == [{"card_id": "c", "status": "blocked"}]


def test_declared_types_take_iso_timestamps_and_json(db_url: str) -> None:
    options = {
        "url": db_url,
        "table": "cases",
        "create": True,
        "columns": {"opened_at": "timestamp", "inputs": "json", "amount": "float", "closed_at": "timestamp"},
    }
    payload = {"opened_at": "2026-11-27T06:00:00", "inputs": {"amount": 12, "mcc": "5411"}, "amount": 12}
    _send(options, _delivery("k1", **payload))  # closed_at is declared, so created, though not sent yet
    _send(options, _delivery("k2", closed_at="2026-11-28T10:30:00+01:00"))  # stored as UTC
    [row, closing] = _rows(db_url, "cases")
    assert row["opened_at"] == datetime(2026, 11, 27, 6, 0) and row["inputs"] == payload["inputs"]
    assert closing["closed_at"] == datetime(2026, 11, 28, 9, 30)
    assert row["amount"] == 12.0


ROW_PROBLEMS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"case_id": "x", "colour": "red"}, {}, "no column 'colour'"),
    ({"status": "open"}, {}, "NOT NULL|not-null|null value"),
    ({"status": "open"}, {"mode": "upsert", "key": ["case_id"]}, "no value for key column 'case_id'"),
    ({"case_id": "x", "opened_at": "yesterday"}, {}, "yesterday"),
    ({"case_id": "x"}, {"key_column": "action_key"}, "no column 'action_key' for the action key; add it"),
]


def test_row_problems_are_permanent_failures(db_url: str) -> None:
    engine = _engine(db_url)
    meta = sa.MetaData()
    sa.Table(
        "cases",
        meta,
        sa.Column("case_id", sa.Text, nullable=False, unique=True),
        sa.Column("status", sa.Text),
        sa.Column("opened_at", sa.DateTime),
        sa.Column("loopml_key", sa.Text, unique=True),
    )
    meta.create_all(engine)
    engine.dispose()
    for payload, options, match in ROW_PROBLEMS:
        with pytest.raises(DeliveryError, match=match) as info:
            _send({"url": db_url, "table": "cases", **options}, _delivery("k1", **payload))
        assert info.value.permanent and "\n" not in str(info.value), payload
    assert _rows(db_url, "cases") == []


def test_a_missing_table_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="does not exist; create it, or set create: true") as info:
        _send({"url": f"sqlite:///{tmp_path / 'x.db'}", "table": "nowhere"}, _delivery("k1", a=1))
    assert info.value.permanent


def test_schema_qualified_table_on_postgres(postgres_url: str) -> None:
    schema = str(sa.make_url(postgres_url).query["options"]).split("search_path=")[-1]
    _send({"url": postgres_url, "table": f"{schema}.crm_cases", "create": True}, _delivery("k1", case_id="x"))
    assert _rows(postgres_url, "crm_cases") == [{"loopml_key": "k1", "case_id": "x"}]


def test_relative_sqlite_path_starts_at_the_project(tmp_path: Path) -> None:
    options = {
        "url": "sqlite:///data/erp.db",
        "table": "blocks",
        "create": True,
        "project_dir": str(tmp_path),
    }
    _send(options, _delivery("k1", card_id="c"))
    assert (tmp_path / "data" / "erp.db").is_file()


def test_options_are_checked_when_built(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match=r"actions\.endpoints\.blocks\.key is needed with mode: upsert"):
        SqlAction("blocks", {"url": url, "table": "t", "mode": "upsert"})
    with pytest.raises(ConfigError, match=r"blocks\.key is only used with mode: upsert"):
        SqlAction("blocks", {"url": url, "table": "t", "key": ["card_id"]})
    with pytest.raises(ConfigError, match="unknown sql option 'tabel'; did you mean 'table'"):
        SqlAction("blocks", {"url": url, "tabel": "t"})


def test_rows_reads_back_what_the_deliveries_wrote(db_url: str) -> None:
    action = SqlAction("cases", {"url": db_url, "table": "cases", "create": True})
    try:
        assert action.rows().empty  # no delivery yet: no table
        action.send(_delivery("k1", case_id="x", score=0.9))
        action.send(_delivery("k1", case_id="x", score=0.9))  # re-sent: still one row
        action.send(_delivery("k2", case_id="y", score=0.7))
        assert action.rows().to_dict("records") == [
            {"loopml_key": "k1", "case_id": "x", "score": 0.9},
            {"loopml_key": "k2", "case_id": "y", "score": 0.7},
        ]
    finally:
        action.close()


def test_project_actions_read_an_sql_endpoint_back(tmp_path: Path) -> None:
    import yaml

    from loopml.config import parse_settings
    from loopml.errors import InputError, NotFoundError
    from loopml.project import Project

    orders = {"kind": "sql", "url": "sqlite:///erp.db", "table": "orders", "create": True}
    hook = {"kind": "webhook", "url": "https://erp.example.com/orders"}
    config = {"name": "m", "source": {"kind": "csv", "path": "x.csv"}, "target": "y"}
    text = yaml.safe_dump({**config, "actions": {"endpoints": {"orders": orders, "hook": hook}}})
    project = Project(parse_settings(text, project_dir=tmp_path, environ={}))
    assert project.actions.sql_rows("orders").empty  # nothing delivered yet
    _send({**orders, "project_dir": str(tmp_path)}, _delivery("k1", engine=7))  # as the dispatcher does
    assert project.actions.sql_rows("orders").to_dict("records") == [{"loopml_key": "k1", "engine": 7}]
    with pytest.raises(NotFoundError, match="no action endpoint 'order'; did you mean 'orders'"):
        project.actions.sql_rows("order")
    with pytest.raises(InputError, match="'hook' is a webhook endpoint; only an sql endpoint's table"):
        project.actions.sql_rows("hook")
