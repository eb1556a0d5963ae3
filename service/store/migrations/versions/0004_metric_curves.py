"""A few generated curves with each logged step, for live figures (job event streams).

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
    # Nullable: rows logged before this revision have no curves, and stay valid.
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("curves", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("curves")
