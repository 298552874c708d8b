"""Opening the metadata store: an SQLAlchemy engine, migrated to the current schema."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from loopml.errors import StoreError

__all__ = ["create_store_engine", "migrate", "psycopg_url", "utcnow"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# Not Alembic's default "alembic_version": Optuna keeps its studies in the same database and uses that.
VERSION_TABLE = "loopml_alembic_version"
_migrate_lock = threading.Lock()


def utcnow() -> datetime:
    """Timezone-aware current time; the store keeps every timestamp in UTC."""
    return datetime.now(UTC)


def psycopg_url(url: URL, purpose: str | None = None) -> URL:
    """``postgresql://`` with psycopg 3 (SQLAlchemy's default driver for it is psycopg2); other URLs as
    they are. ``purpose`` (e.g. "reading a PostgreSQL source"): first check that psycopg is installed."""
    if url.drivername not in {"postgresql", "postgres"}:
        return url
    if purpose is not None:
        from loopml._optional import require

        require("psycopg", purpose)
    return url.set(drivername="postgresql+psycopg")


def create_store_engine(url: str, *, upgrade: bool = True) -> Engine:
    """Create an engine for ``url`` (SQLite file or PostgreSQL) and migrate it to head.

    SQLite runs in WAL mode with a busy timeout so that the API, the worker and the CLI can share
    one file. A ``postgresql://`` URL uses psycopg 3.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"store URL '{url}' is not a valid SQLAlchemy URL ({exc}).") from None
    parsed = psycopg_url(parsed)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the folder of the SQLite store {parsed.database}: {exc.strerror or exc}."
                ) from None
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except ArgumentError as exc:  # includes an unknown dialect (NoSuchModuleError)
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"store URL '{shown}' cannot be used ({exc}).") from None
    if parsed.drivername.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    if upgrade:
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the store's schema to ``revision`` with Alembic (a no-op when already there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with _migrate_lock:
        try:
            with engine.begin() as connection:
                if revision == "head" and _at_head(connection, config):
                    return
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        except DBAPIError as exc:  # cannot connect, or the file/database is not a usable store
            reason = " ".join(str(exc.orig).split())  # drivers' messages span lines; keep one
            raise StoreError(
                f"cannot open the metadata store at {engine.url.render_as_string(hide_password=True)}: "
                f"{reason}",
                hint="Check LOOPML_DB_URL / store.db_url and that the database is running.",
            ) from None


def _at_head(connection: Any, config: Any) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if VERSION_TABLE not in inspect(connection).get_table_names():
        return False
    current = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_heads()
    return set(current) == set(ScriptDirectory.from_config(config).get_heads())
