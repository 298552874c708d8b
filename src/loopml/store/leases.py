"""Leases: at most one holder of a named job at a time, across processes and machines.

A lease is a row (name, owner, expiry) in the metadata store, taken and renewed with one atomic
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so it works the same on SQLite and on a
shared PostgreSQL. A holder that dies stops renewing; once its lease expires the next
``acquire`` takes it over. Used so that one retraining cycle per model runs at a time however
many workers share the store.

Examples
--------
>>> from loopml.store import create_store_engine
>>> engine = create_store_engine("sqlite://")
>>> acquire(engine, "retrain:fraud", "worker-a", ttl_s=30)
True
>>> acquire(engine, "retrain:fraud", "worker-b", ttl_s=30)
False
>>> release(engine, "retrain:fraud", "worker-a")
>>> acquire(engine, "retrain:fraud", "worker-b", ttl_s=30)
True
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from loopml.errors import BusyError, StoreError
from loopml.store.engine import utcnow
from loopml.store.tables import leases

__all__ = ["acquire", "holder", "lease", "make_owner", "release"]


def make_owner() -> str:
    """A name for this process that is unique across machines: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(engine: Engine, name: str, owner: str, ttl_s: float) -> bool:
    """Take or renew lease ``name`` for ``ttl_s`` seconds; False if another owner holds it unexpired."""
    now = utcnow()
    values = {"name": name, "owner": owner, "acquired_at": now, "expires_at": now + timedelta(seconds=ttl_s)}
    dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
    if engine.dialect.name not in {"sqlite", "postgresql"}:
        raise StoreError(f"leases need SQLite or PostgreSQL, not {engine.dialect.name}.")
    statement = dialect.insert(leases).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"owner": owner, "expires_at": values["expires_at"], "acquired_at": values["acquired_at"]},
        where=(leases.c.owner == owner) | (leases.c.expires_at < now),
    ).returning(leases.c.owner)  # a row back only when this owner now holds it (rowcount lies on psycopg)
    with engine.begin() as connection:
        return connection.execute(statement).first() is not None


def release(engine: Engine, name: str, owner: str) -> None:
    """Give lease ``name`` up if ``owner`` holds it (a no-op otherwise)."""
    with engine.begin() as connection:
        connection.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))


def holder(engine: Engine, name: str) -> str | None:
    """The owner of an unexpired lease ``name``, or None."""
    with engine.connect() as connection:
        row = connection.execute(
            select(leases.c.owner).where(leases.c.name == name, leases.c.expires_at >= utcnow())
        ).first()
    return None if row is None else str(row.owner)


@contextmanager
def lease(engine: Engine, name: str, *, ttl_s: float = 60.0, owner: str | None = None) -> Iterator[str]:
    """Hold lease ``name`` for the ``with`` block, renewing it every ``ttl_s / 3`` seconds.

    Raises :class:`~loopml.errors.BusyError` at once if another live owner holds it.
    """
    owner = owner or make_owner()
    if not acquire(engine, name, owner, ttl_s):
        raise BusyError(
            f"'{name}' is held by {holder(engine, name) or 'another process'}",
            hint=f"It passes on once its holder stops renewing it (at most {ttl_s:g} s after it dies).",
        )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                acquire(engine, name, owner, ttl_s)
            except Exception:  # a brief store outage: try again at the next beat
                continue

    thread = threading.Thread(target=renew, name=f"loopml-lease-{name}", daemon=True)
    thread.start()
    try:
        yield owner
    finally:
        stop.set()
        thread.join()
        release(engine, name, owner)
