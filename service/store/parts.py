"""Which jobs a claim takes together: the job it picks and, for a fresh sweep member, the
rest of that member's part of its sweep (``LeaseQueries.claim_part`` in leases.py)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import JobState
from .tables import checkpoints, jobs

QUEUED = JobState.QUEUED.value

# A claim that finds its pick taken by another worker meanwhile (PostgreSQL: the pick is read
# without a lock) looks again; each miss means another claim went through.
CLAIM_TRIES = 20


class Missed(Exception):
    """A claim's pick went to another worker between its read and its write."""


def _fresh() -> Any:
    """A job that starts at step 0: nothing to resume from, no checkpoint of its own."""
    saved = sa.exists().where(checkpoints.c.job_id == jobs.c.id)
    return sa.and_(jobs.c.step == 0, jobs.c.resumed_from.is_(None), ~saved)


def pick(job_id: str | None) -> Any:
    """``job_id``, or the oldest queued job, if it is queued and not cancelled."""
    query = sa.select(jobs.c.id, jobs.c.sweep_id, jobs.c.config, _fresh().label("fresh")).where(
        jobs.c.state == QUEUED, jobs.c.cancel_requested == sa.false()
    )
    if job_id is not None:
        return query.where(jobs.c.id == job_id)
    return query.order_by(jobs.c.seq).limit(1)


def part_members(
    conn: Connection,
    first: Any,
    shape_of: Callable[[dict[str, Any]], Hashable],
    part_of: Callable[[int, int], int],
) -> list[str]:
    """The queued fresh members of ``first``'s part of its sweep (the parts: see
    ``LeaseQueries.claim_part``)."""
    rows = conn.execute(
        sa.select(
            jobs.c.id,
            jobs.c.config,
            sa.and_(jobs.c.state == QUEUED, jobs.c.cancel_requested == sa.false(), _fresh()).label(
                "free"
            ),
        )
        .where(jobs.c.sweep_id == first.sweep_id)
        .order_by(jobs.c.seq)
    ).all()
    shape = shape_of(first.config)
    same = [row for row in rows if shape_of(row.config) == shape]
    n = len(same)
    index = next(i for i, row in enumerate(same) if row.id == first.id)
    part = part_of(index, n)
    return [row.id for i, row in enumerate(same) if row.free and part_of(i, n) == part]
