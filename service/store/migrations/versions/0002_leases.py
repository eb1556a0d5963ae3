"""Job leases, so that workers on several machines can share one database: who holds a job and
until when, how often its worker was lost, and requests to that worker.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults, so that the rows already there get a value for the NOT NULL columns.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(200)))
        batch.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_expires_at", sa.Float))
        batch.add_column(sa.Column("lost_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("save_requests", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("suspend_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("published_at", sa.Float))
        # The lease reaper looks for running jobs whose lease has run out.
        batch.create_index("ix_jobs_state_lease_expires_at", ["state", "lease_expires_at"])
    # A job's newest checkpoint is looked up with every read of the job.
    op.create_index("ix_checkpoints_job_id_step", "checkpoints", ["job_id", "step"])


def downgrade() -> None:
    op.drop_index("ix_checkpoints_job_id_step", table_name="checkpoints")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_state_lease_expires_at")
        for name in (
            "published_at",
            "suspend_requested",
            "save_requests",
            "lost_count",
            "lease_expires_at",
            "attempt",
            "worker_id",
        ):
            batch.drop_column(name)
