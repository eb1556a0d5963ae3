"""Sweeps: a base recipe and its variations, whose members are ordinary jobs that name their
sweep and their place in it.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("best_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        # Unnamed, like the jobs' one: what tables.py's unique=True makes.
        sa.UniqueConstraint("idempotency_key"),
    )
    # Nullable: the jobs already there, and every job made by POST /v1/jobs, are no members.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sweep_id", sa.String(64)))
        batch.add_column(sa.Column("member_index", sa.Integer))
        # A sweep's members are read in one query by its id.
        batch.create_index("ix_jobs_sweep_id", ["sweep_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_sweep_id")
        batch.drop_column("member_index")
        batch.drop_column("sweep_id")
    op.drop_table("sweeps")
