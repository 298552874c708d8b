"""endpoint breakers: per action endpoint, whether it is failing, since when, and its next probe

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("action_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("down_since", _ts, nullable=True))
        batch_op.add_column(sa.Column("next_probe_at", _ts, nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("alerted_at", _ts, nullable=True))
    with op.batch_alter_table("action_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_action_outbox_endpoint_status_id"), ["endpoint", "status", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("action_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_outbox_endpoint_status_id"))
    with op.batch_alter_table("action_endpoints", schema=None) as batch_op:
        batch_op.drop_column("alerted_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_probe_at")
        batch_op.drop_column("down_since")
        batch_op.drop_column("failures")
