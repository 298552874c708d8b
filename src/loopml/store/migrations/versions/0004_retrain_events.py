"""retraining policy decisions and cycles

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retrain_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decision", sa.Boolean(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("challenger_version", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retrain_events")),
    )
    with op.batch_alter_table("retrain_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retrain_events_model_name_kind_started_at"),
            ["model_name", "kind", "started_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("retrain_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retrain_events_model_name_kind_started_at"))
    op.drop_table("retrain_events")
