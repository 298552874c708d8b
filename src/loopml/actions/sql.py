"""The ``sql`` action: each delivery becomes a row in a table of any SQLAlchemy database.

Options (``actions.endpoints.<name>`` in ``loopml.yaml``)::

    blocks: {kind: sql, url: "sqlite:///blocks.db", table: card_blocks, mode: upsert, key: [card_id],
             create: true}
    cases:  {kind: sql, url: "postgresql://crm@db/crm", table: crm.case_intake}   # insert mode

- ``url`` (required): a SQLAlchemy URL (``postgresql://`` uses psycopg 3; a relative SQLite path starts
  at the project); the password may come from the environment variable named by ``password_env``.
- ``table`` (required): ``name`` or ``schema.name``. The payload's fields are its columns.
- ``mode``: ``insert`` (default) adds a row per action; ``upsert`` inserts or updates the row whose
  ``key`` columns (required then) match the payload's.
- ``key_column``: a column that stores the action's idempotency key; in insert mode (default
  ``loopml_key``) a key already in the table is not inserted again, so a re-sent action adds nothing.
  Set it to null for a table without such a column (inserts are then at least once). In upsert mode it
  is optional (default none) and records the last key that wrote the row.
- ``create``: create the table when it is missing (default false): the columns declared in ``columns``
  (``{name: text|integer|float|boolean|timestamp|json}``) and the first payload's fields (types
  inferred), with a unique constraint on ``key`` (upsert) or on ``key_column`` (insert).
- ``timeout_s``: connect timeout (and SQLite's busy timeout), default 10.

SQL is built with SQLAlchemy Core on the reflected table, never from strings. Upserts and idempotent
inserts use ``INSERT ... ON CONFLICT`` on SQLite and PostgreSQL when a primary key or unique
constraint covers the conflict columns; other databases, or tables without such a constraint, use a
select-then-update-or-insert in one transaction. Values for timestamp columns may be ISO-8601 strings
(one with an offset is stored in UTC in a column without a time zone); lists and mappings go to JSON
columns as they are and to other columns as JSON text. A missing table or column, a constraint
violation or a bad value is a permanent failure; a connection failure or a locked database is retried.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

from loopml.actions._options import Options, one_line
from loopml.actions.base import Delivery, DeliveryError
from loopml.store.engine import psycopg_url

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SqlAction"]

_OPTIONS = ("url", "table", "mode", "key", "key_column", "create", "columns", "timeout_s", "password_env")
_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "integer": sa.BigInteger,
    "float": sa.Float,
    "boolean": sa.Boolean,
    "timestamp": sa.DateTime,
    "json": sa.JSON,
}
_ON_CONFLICT = ("sqlite", "postgresql")
_PERMANENT = (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError, sa.exc.CompileError)


def _inferred(value: Any) -> Any:
    """The column type for a payload value when the table is created without ``columns``."""
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, float):
        return sa.Float()
    if isinstance(value, Mapping | list):
        return sa.JSON()
    return sa.Text()


def _coerce(column: sa.Column[Any], value: Any) -> Any:
    """Adapt a JSON-born value to the column: ISO strings to timestamps (an aware one to UTC for a
    column without a time zone), structures to JSON text where the column is not JSON."""
    kind = column.type
    if isinstance(value, str) and isinstance(kind, sa.DateTime | sa.Date):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not isinstance(kind, sa.DateTime):
            return value.date()
    if isinstance(value, datetime) and isinstance(kind, sa.DateTime):
        naive = value.tzinfo is not None and not kind.timezone
        return value.astimezone(UTC).replace(tzinfo=None) if naive else value
    if isinstance(value, Mapping | list) and not isinstance(kind, sa.JSON):
        return json.dumps(value, default=str)
    if isinstance(value, datetime | date) and isinstance(kind, sa.String):
        return value.isoformat()
    return value


def _engine_url(opts: Options) -> URL:
    raw = str(opts.text("url", example="sqlite:///actions.db"))
    try:
        url = make_url(raw)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise opts.error("url", f"is not a usable SQLAlchemy URL ({one_line(exc)})") from None
    database = url.database or ""
    if (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).is_absolute()
    ):
        url = url.set(database=str(opts.project_dir() / database))  # relative: inside the project
    url = psycopg_url(url, "SQL actions on PostgreSQL")
    password = opts.env_secret("password_env")
    return url.set(password=password) if password else url


class SqlAction:
    """Insert or upsert one row per delivery into ``table``, idempotent per key."""

    kind: ClassVar[str] = "sql"
    thread_safe: ClassVar[bool] = True  # a SQLAlchemy engine's pool serves concurrent sends

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        opts = Options(self.kind, name, options, _OPTIONS)
        self.name = name
        self.url = _engine_url(opts)
        schema, _, table = str(opts.text("table", example="case_intake")).rpartition(".")
        self.schema, self.table_name = schema or None, table
        self.mode = opts.choice("mode", ["insert", "upsert"], "insert")
        self.key = opts.names("key", None)
        if self.mode == "upsert" and not self.key:
            raise opts.error("key", "is needed with mode: upsert (the columns that identify a row)")
        if self.mode == "insert" and self.key:
            raise opts.error("key", "is only used with mode: upsert; set mode: upsert, or remove key")
        default_key_column = "loopml_key" if self.mode == "insert" else None
        self.key_column: str | None = opts.text("key_column", default_key_column)
        self.create = opts.flag("create", False)
        self.columns = self._column_types(opts)
        self.timeout = float(opts.number("timeout_s", 10.0, minimum=0.1))
        self.shown = self.url.set(query={}).render_as_string(hide_password=True)
        self._engine = self._make_engine(opts)
        self._lock = threading.Lock()
        self._table: sa.Table | None = None
        self._unique: list[set[str]] = []
        self._pid = os.getpid()

    @staticmethod
    def _column_types(opts: Options) -> dict[str, Any]:
        declared = opts.mapping("columns")
        for column, kind in declared.items():
            if kind not in _TYPES:
                raise opts.error(f"columns.{column}", f"must be one of {', '.join(_TYPES)}, got {kind!r}")
        return {column: _TYPES[kind]() for column, kind in declared.items()}

    def _make_engine(self, opts: Options) -> sa.Engine:
        backend = self.url.get_backend_name()
        args: dict[str, Any] = {}
        if backend == "sqlite":
            args["timeout"] = self.timeout
        elif backend == "postgresql":
            args["connect_timeout"] = max(1, int(self.timeout))
        try:
            return sa.create_engine(self.url, pool_pre_ping=True, connect_args=args)
        except ImportError as exc:
            raise opts.error(
                "url", f"needs a database driver that is not installed ({one_line(exc)})"
            ) from None

    @property
    def where(self) -> str:
        table = f"{self.schema}.{self.table_name}" if self.schema else self.table_name
        return f"sql table '{table}' at {self.shown}"

    # -- the table ----------------------------------------------------------------------------------

    def _new_table(self, row: Mapping[str, Any]) -> sa.Table:
        own = [*self.key, *([self.key_column] if self.key_column else []), *self.columns]
        names = list(dict.fromkeys([*own, *row]))
        columns = []
        for name in names:
            kind = self.columns.get(name)
            if kind is None:
                kind = _inferred(row.get(name))
                if isinstance(kind, sa.Text) and (name in self.key or name == self.key_column):
                    kind = sa.String(255)  # indexable everywhere (MySQL cannot index TEXT)
            columns.append(sa.Column(name, kind, nullable=name not in self.key))
        constraints = [sa.UniqueConstraint(*self.key)] if self.key else []
        if self.key_column and self.mode == "insert":
            constraints.append(sa.UniqueConstraint(self.key_column))
        return sa.Table(self.table_name, sa.MetaData(), *columns, *constraints, schema=self.schema)

    def _load(self, conn: sa.Connection, row: Mapping[str, Any]) -> sa.Table:
        """The table's columns and the column sets a key or unique constraint covers (reflected once:
        columns only, which is several times faster than a full reflection on PostgreSQL)."""
        if self._table is not None:
            return self._table
        inspector = sa.inspect(conn)
        name, schema = self.table_name, self.schema
        if self.create and not inspector.has_table(name, schema=schema):
            self._new_table(row).create(conn, checkfirst=True)
            inspector = sa.inspect(conn)
        columns = [sa.Column(c["name"], c["type"]) for c in inspector.get_columns(name, schema=schema)]
        table = sa.Table(name, sa.MetaData(), *columns, schema=schema)
        unique = [set(inspector.get_pk_constraint(name, schema=schema)["constrained_columns"])]
        unique += [set(u["column_names"]) for u in inspector.get_unique_constraints(name, schema=schema)]
        indexes = inspector.get_indexes(name, schema=schema)
        unique += [{str(c) for c in i["column_names"]} for i in indexes if i["unique"]]
        self._table, self._unique = table, [u for u in unique if u]
        return table

    def _values(self, table: sa.Table, delivery: Delivery) -> dict[str, Any]:
        row = dict(delivery.payload)
        if self.key_column:
            row[self.key_column] = delivery.key
        if self.key_column and self.key_column not in table.c:
            raise DeliveryError(
                f"{self.where} has no column '{self.key_column}' for the action key; add it (unique), "
                "or set key_column: null on the endpoint (inserts are then at least once)",
                permanent=True,
            )
        missing = [c for c in row if c not in table.c]
        if missing:
            raise DeliveryError(
                f"{self.where} has no column '{missing[0]}' (from the payload); add the column or remove "
                "the field from the rule's payload",
                permanent=True,
            )
        absent = [k for k in self.key if row.get(k) is None]
        if absent:
            raise DeliveryError(
                f"{self.where}: the payload has no value for key column '{absent[0]}'", permanent=True
            )
        try:
            return {name: _coerce(table.c[name], value) for name, value in row.items()}
        except ValueError as exc:
            raise DeliveryError(f"{self.where}: {one_line(exc)}", permanent=True) from None

    # -- writing ------------------------------------------------------------------------------------

    def _dialect_insert(self, table: sa.Table, conflict: list[str]) -> Any:
        backend = self.url.get_backend_name()
        if backend not in _ON_CONFLICT or set(conflict) not in self._unique:
            return None
        from sqlalchemy.dialects import postgresql, sqlite

        return postgresql.insert(table) if backend == "postgresql" else sqlite.insert(table)

    def _insert(self, conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
        if not self.key_column:
            conn.execute(sa.insert(table).values(values))
            return
        native = self._dialect_insert(table, [self.key_column])
        if native is not None:
            conn.execute(native.values(values).on_conflict_do_nothing(index_elements=[self.key_column]))
            return
        column = table.c[self.key_column]
        if conn.execute(sa.select(column).where(column == values[self.key_column]).limit(1)).first() is None:
            conn.execute(sa.insert(table).values(values))

    def _upsert(self, conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
        changes = {c: v for c, v in values.items() if c not in self.key}
        native = self._dialect_insert(table, self.key)
        if native is not None:
            statement = native.values(values)
            if changes:
                excluded = {c: statement.excluded[c] for c in changes}
                conn.execute(statement.on_conflict_do_update(index_elements=self.key, set_=excluded))
            else:
                conn.execute(statement.on_conflict_do_nothing(index_elements=self.key))
            return
        match = sa.and_(*(table.c[k] == values[k] for k in self.key))
        if conn.execute(sa.select(*(table.c[k] for k in self.key)).where(match).limit(1)).first() is None:
            conn.execute(sa.insert(table).values(values))
        elif changes:
            conn.execute(sa.update(table).where(match).values(changes))

    def _write(self, delivery: Delivery) -> None:
        if self._pid != os.getpid():  # a forked child must not reuse its parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        database = self.url.database or ""
        if self.create and self.url.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not folders
        try:
            connection = self._engine.connect()
        except SQLAlchemyError as exc:
            raise DeliveryError(f"{self.where}: {one_line(exc, 150)}", unreachable=True) from None
        with connection as conn, conn.begin():
            with self._lock:
                table = self._load(conn, delivery.payload)
            values = self._values(table, delivery)
            (self._upsert if self.mode == "upsert" else self._insert)(conn, table, values)

    def send(self, delivery: Delivery) -> None:
        """Write the row in one transaction; raise :class:`DeliveryError` on failure."""
        try:
            self._write(delivery)
        except DeliveryError:
            raise
        except NoSuchTableError:
            raise DeliveryError(
                f"{self.where} does not exist; create it, or set create: true on the endpoint", permanent=True
            ) from None
        except SQLAlchemyError as exc:
            self._table = None  # reflect again next time: the table may have changed
            invalidated = getattr(exc, "connection_invalidated", False)
            permanent = isinstance(exc, _PERMANENT) and not invalidated
            message = f"{self.where}: {one_line(exc, 150)}"
            raise DeliveryError(message, permanent=permanent, unreachable=invalidated) from None
        except OSError as exc:  # e.g. the SQLite file's folder cannot be made
            raise DeliveryError(f"{self.where}: {one_line(exc)}", unreachable=True) from None

    def rows(self) -> pd.DataFrame:
        """Every row the table holds, with the endpoint's own connection settings: what the
        deliveries wrote (an empty frame while the table does not exist yet)."""
        import pandas as pd

        with self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.table_name, schema=self.schema):
                return pd.DataFrame()
            return pd.read_sql_table(self.table_name, conn, schema=self.schema)

    def close(self) -> None:
        """Close the connection pool (safe to call twice)."""
        self._engine.dispose(close=self._pid == os.getpid())
