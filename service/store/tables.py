"""The SQL schema at the newest migration (migrations/ builds and upgrades it; a test checks
that the two agree)."""

from __future__ import annotations

import sqlalchemy as sa

from ..domain import METRIC_FIELDS

meta = sa.MetaData()

jobs = sa.Table(
    "jobs",
    meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),  # creation order: FIFO and newest-first
    sa.Column("name", sa.String(200)),
    sa.Column("state", sa.String(16), nullable=False, index=True),
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
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("idempotency_key", sa.String(200), unique=True),
    sa.Column("request_hash", sa.String(64)),
    # The lease (migration 0002): who trains the job, under which claim, until when (the
    # database's clock, so workers' clocks never matter).
    sa.Column("worker_id", sa.String(200)),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_expires_at", sa.Float),
    # Times a worker was lost mid-job; past the limit the job fails instead of looping.
    sa.Column("lost_count", sa.Integer, nullable=False, server_default="0"),
    # Requests to whichever worker holds the job, on any machine.
    sa.Column("save_requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("suspend_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    # When the job was last announced to a broker (cluster mode), to find lost messages.
    sa.Column("published_at", sa.Float),
    # A sweep's members (migration 0003): its id, indexed to read a sweep's members in one
    # query, and the member's place in the sweep's expansion.
    sa.Column("sweep_id", sa.String(64), index=True),
    sa.Column("member_index", sa.Integer),
    # The lease reaper looks for running jobs whose lease has run out.
    sa.Index("ix_jobs_state_lease_expires_at", "state", "lease_expires_at"),
)
# A base recipe and its variations (migration 0003). No state column: a sweep's state is
# derived from its members' in the query that reads them, so the two can never disagree.
sweeps = sa.Table(
    "sweeps",
    meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),  # newest-first listing
    sa.Column("name", sa.String(200)),
    sa.Column("config", sa.JSON, nullable=False),  # the request: preset, config, vary/members
    sa.Column("best_by", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("idempotency_key", sa.String(200), unique=True),
    sa.Column("request_hash", sa.String(64)),
)
metrics = sa.Table(
    "metrics",
    meta,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    *(sa.Column(name, sa.Float) for name in METRIC_FIELDS),
    sa.Column("created_at", sa.Float, nullable=False),
    # A few generated curves at this step (migration 0004): what a live figure redraws.
    sa.Column("curves", sa.JSON),
)
checkpoints = sa.Table(
    "checkpoints",
    meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    # No foreign key: a deleted job's checkpoints stay, still naming the job they came from.
    sa.Column("job_id", sa.String(64), index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON),
    sa.Column("quality", sa.JSON),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    # A job's newest checkpoint is looked up with every read of the job.
    sa.Index("ix_checkpoints_job_id_step", "job_id", "step"),
)
