"""What creating jobs and sweeps share: one creator at a time, Idempotency-Key replays, and
the queue limit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import JobState
from .rows import IdempotencyConflict, QueueFull
from .tables import jobs


def lock_creators(conn: Connection) -> None:
    """On PostgreSQL, serialises creators like SQLite's BEGIN IMMEDIATE does: sequence numbers
    stay unique and the queue limit and Idempotency-Key checks see every committed job."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE"))


def replayed(
    conn: Connection, table: sa.Table, idempotency_key: str | None, request_hash: str | None
) -> str | None:
    """The id created earlier under this Idempotency-Key for the same request, or None;
    IdempotencyConflict when the key was used for another request."""
    if idempotency_key is None:
        return None
    row = conn.execute(
        sa.select(table.c.id, table.c.request_hash).where(
            table.c.idempotency_key == idempotency_key
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyConflict(row.id)
    return str(row.id)


def check_room(conn: Connection, adding: int, max_queued: int | None) -> None:
    """QueueFull unless ``adding`` more queued jobs stay within ``max_queued`` (all or none)."""
    if max_queued is None:
        return
    queued = conn.execute(
        sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == JobState.QUEUED.value)
    ).scalar_one()
    if queued + adding > max_queued:
        raise QueueFull(queued)
