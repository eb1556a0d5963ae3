"""The schema as it was before migrations: what `meta.create_all` made in existing databases.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here, not imported: a migration must build the same tables however the code changes.
METRIC_FIELDS = ("d_loss", "g_loss", "d_accuracy", "d_score", "in_band", "resid", "w1_a")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("metrics", sa.JSON),
        sa.Column("quality", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("resumed_from", sa.String(64)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        # Unnamed, as create_all made it: PostgreSQL names it jobs_idempotency_key_key.
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "metrics",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        *(sa.Column(name, sa.Float) for name in METRIC_FIELDS),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON),
        sa.Column("quality", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_index("ix_checkpoints_job_id", "checkpoints", ["job_id"])


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("metrics")
    op.drop_table("jobs")
