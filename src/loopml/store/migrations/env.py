"""Alembic environment: loopml runs migrations in process, on a connection it passes in."""

from __future__ import annotations

from alembic import context

from loopml.store.engine import VERSION_TABLE
from loopml.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, version_table=VERSION_TABLE
)
with context.begin_transaction():
    context.run_migrations()
