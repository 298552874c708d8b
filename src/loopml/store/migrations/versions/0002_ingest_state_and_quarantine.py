"""ingest state (watermarks) and quarantine snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("schema_changes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_quarantine_snapshots_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine_snapshots")),
        sa.UniqueConstraint("dataset_version_id", name=op.f("uq_quarantine_snapshots_dataset_version_id")),
    )
    op.create_table(
        "ingest_state",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("watermark_column", sa.String(length=200), nullable=False),
        sa.Column("watermark", sa.JSON(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_ingest_state_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ingest_state")),
    )


def downgrade() -> None:
    op.drop_table("ingest_state")
    op.drop_table("quarantine_snapshots")
