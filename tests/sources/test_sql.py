"""The SQL source on real SQLite and PostgreSQL: tables, queries, chunks, watermarks, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from loopml.config import SourceConfig
from loopml.errors import DataError
from loopml.sources import IncrementalSource, SqlSource, read_all, source_from_config


def _engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    if url.startswith("sqlite"):
        Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(url)
    frame = pd.DataFrame(
        {
            "id": range(1, 11),
            "amount": [i * 2.5 for i in range(1, 11)],
            "city": [f"c{i % 3}" for i in range(10)],
        }
    )
    frame.to_sql("orders", engine, index=False)
    engine.dispose()
    yield url


def test_table_round_trip_in_chunks(db_url: str) -> None:
    source = SqlSource(db_url, table="orders")
    assert isinstance(source, IncrementalSource)
    batches = list(source.iter_batches(batch_rows=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    got = pd.concat(batches, ignore_index=True).sort_values("id", ignore_index=True)
    assert got["id"].tolist() == list(range(1, 11))
    assert got["amount"].tolist() == [i * 2.5 for i in range(1, 11)]


def test_query_and_watermark_pushdown(db_url: str) -> None:
    source = SqlSource(db_url, query="SELECT id, city FROM orders WHERE id <= 8;")
    assert sorted(read_all(source)["id"]) == list(range(1, 9))
    after = pd.concat(list(source.iter_batches_after("id", 5, batch_rows=2)))
    assert after["id"].tolist() == [6, 7, 8]  # only newer rows, in watermark order
    assert list(source.iter_batches_after("id", 8)) == [] or all(
        len(b) == 0 for b in source.iter_batches_after("id", 8)
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"table": "nope"}, "(table 'nope') failed:"), ({"query": "SELEC id FROM orders"}, "(query) failed:")],
)
def test_sql_errors_are_one_line_and_name_the_source(
    db_url: str, kwargs: dict[str, str], fragment: str
) -> None:
    with pytest.raises(DataError) as info:
        read_all(SqlSource(db_url, **kwargs))
    message = str(info.value)
    assert message.startswith("SQL source '") and fragment in message
    assert "source.table / source.query" in message and "\n" not in message


def test_bad_url_and_table_or_query(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is not a valid SQLAlchemy URL .*Fix source.url"):
        read_all(SqlSource("not a url", table="t"))
    with pytest.raises(DataError, match="cannot be opened"):
        read_all(SqlSource("nosuchdialect://x/y", table="t"))
    with pytest.raises(DataError, match="exactly one of table or query"):
        SqlSource("sqlite://", table="t", query="SELECT 1")


def test_describe_hides_the_password() -> None:
    described = SqlSource("postgresql://me:secret@db/shop", table="orders").describe()
    assert described == {
        "kind": "sql",
        "url": "postgresql://me:***@db/shop",
        "table": "orders",
        "query": None,
    }


def test_config_resolves_relative_sqlite_paths(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'shop.db'}")
    pd.DataFrame({"x": [1, 2]}).to_sql("t", engine, index=False)
    engine.dispose()
    config = SourceConfig(kind="sql", url="sqlite:///data/shop.db", table="t")
    assert read_all(source_from_config(config, tmp_path))["x"].tolist() == [1, 2]
