"""actions: transactional outbox, delivery attempts, disabled endpoints

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "action_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("dedupe_key", sa.String(length=500), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts, nullable=False),
        sa.Column("claimed_until", _ts, nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("delivered_at", _ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_action_outbox_key")),
    )
    with op.batch_alter_table("action_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_action_outbox_status_next_attempt_at"), ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_action_outbox_rule_dedupe_key_created_at"),
            ["rule", "dedupe_key", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_action_outbox_rule_created_at"), ["rule", "created_at"], unique=False
        )
    op.create_table(
        "action_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retry_after", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("started_at", _ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["action_outbox.id"], name=op.f("fk_action_deliveries_outbox_id_action_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_deliveries")),
    )
    with op.batch_alter_table("action_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_deliveries_outbox_id"), ["outbox_id"], unique=False)
    op.create_table(
        "action_endpoints",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_action_endpoints")),
    )


def downgrade() -> None:
    op.drop_table("action_endpoints")
    with op.batch_alter_table("action_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_deliveries_outbox_id"))
    op.drop_table("action_deliveries")
    with op.batch_alter_table("action_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_outbox_rule_created_at"))
        batch_op.drop_index(batch_op.f("ix_action_outbox_rule_dedupe_key_created_at"))
        batch_op.drop_index(batch_op.f("ix_action_outbox_status_next_attempt_at"))
    op.drop_table("action_outbox")
