"""SQL source: a table or a query on any SQLAlchemy URL, streamed in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from loopml.errors import DataError
from loopml.store.engine import psycopg_url

__all__ = ["SqlSource", "one_line", "resolve_sqlite_url"]


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite file path (``sqlite:///data/x.db``) start at ``base_dir``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return url
    if Path(database).is_absolute():
        return url
    return parsed.set(database=str(base_dir / database)).render_as_string(hide_password=False)


def one_line(exc: BaseException) -> str:
    """The driver's own message, first line only (pandas and SQLAlchemy wrap it in more text)."""
    if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines() or [type(orig).__name__]
    return " ".join(lines[0].split())


class SqlSource:
    """Rows of a ``table`` or of a ``query`` (exactly one), read with a server-side cursor in chunks.

    Examples
    --------
    >>> SqlSource("sqlite:///shop.db", table="orders").describe()["table"]
    'orders'
    """

    def __init__(self, url: str, table: str | None = None, query: str | None = None, **options: Any) -> None:
        if (table is None) == (query is None):
            raise DataError(
                f"SQL source '{url}' needs exactly one of table or query.",
                hint="Set source.table or source.query in loopml.yaml.",
            )
        self.url = url
        self.table = table
        self.query = query
        self.options = options

    def _url(self) -> URL:
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise DataError(
                f"SQL source URL '{self.url}' is not a valid SQLAlchemy URL ({exc}).",
                hint="Fix source.url in loopml.yaml, e.g. postgresql://user@host/db or sqlite:///data/x.db.",
            ) from None
        return psycopg_url(parsed, "reading a PostgreSQL source")

    @property
    def _shown(self) -> str:
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return self.url

    def _where(self) -> str:
        return f"table '{self.table}'" if self.table else "query"

    def describe(self) -> dict[str, Any]:
        return {"kind": "sql", "url": self._shown, "table": self.table, "query": self.query}

    def iter_batches(self, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        yield from self._read(None, None, batch_rows)

    def column_names(self) -> list[str]:
        """The result's columns, from a query that matches no row (``WHERE 1 = 0``)."""
        engine = self._engine()
        try:
            sql, _ = self._statement(engine, None, None)
            with engine.connect() as conn:
                return list(map(str, conn.execute(sa.text(f"{sql} WHERE 1 = 0")).keys()))
        except SQLAlchemyError as exc:
            raise self._failed(exc) from None
        finally:
            engine.dispose()

    def iter_batches_after(
        self, column: str, after: Any, batch_rows: int = 100_000
    ) -> Iterator[pd.DataFrame]:
        yield from self._read(column, after, batch_rows)

    def _statement(self, engine: sa.Engine, column: str | None, after: Any) -> tuple[str, dict[str, Any]]:
        quote = engine.dialect.identifier_preparer.quote
        if self.table:
            schema, _, name = self.table.rpartition(".")
            base = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
        else:
            base = f"({str(self.query).strip().rstrip(';')}) AS loopml_source"
        sql = f"SELECT * FROM {base}"
        if column is None:
            return sql, {}
        if after is None:
            return f"{sql} ORDER BY {quote(column)}", {}
        return f"{sql} WHERE {quote(column)} > :after ORDER BY {quote(column)}", {"after": after}

    def _engine(self) -> sa.Engine:
        try:
            return sa.create_engine(self._url())
        except (ArgumentError, ImportError) as exc:
            raise DataError(
                f"SQL source '{self._shown}' cannot be opened: {one_line(exc)}.",
                hint="Check source.url in loopml.yaml and that its driver is installed.",
            ) from None

    def _failed(self, exc: BaseException) -> DataError:
        return DataError(
            f"SQL source '{self._shown}' ({self._where()}) failed: {one_line(exc)}",
            hint="Check source.table / source.query in loopml.yaml and that the database is reachable.",
        )

    def _read(self, column: str | None, after: Any, batch_rows: int) -> Iterator[pd.DataFrame]:
        engine = self._engine()
        try:
            sql, params = self._statement(engine, column, after)
            with engine.connect() as conn:
                streaming = conn.execution_options(stream_results=True, max_row_buffer=batch_rows)
                yield from pd.read_sql_query(sa.text(sql), streaming, params=params, chunksize=batch_rows)
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise self._failed(exc) from None
        finally:
            engine.dispose()
