"""Job, metric and checkpoint records in SQL (SQLAlchemy Core: SQLite here, PostgreSQL later).

Every job state change goes through ``Store.transition``, which allows only the edges in
``TRANSITIONS``: no edge leaves a final state, so a finished job can never be revived.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
# to-state -> the states it may be entered from. running -> queued is the way back to the
# queue for a job whose worker stopped without finishing (server restart or crash).
TRANSITIONS: dict[str, frozenset[str]] = {
    RUNNING: frozenset({QUEUED}),
    QUEUED: frozenset({RUNNING}),
    SUCCEEDED: frozenset({RUNNING}),
    FAILED: frozenset({QUEUED, RUNNING}),
    CANCELLED: frozenset({QUEUED, RUNNING}),
}
METRIC_FIELDS = ("d_loss", "g_loss", "d_accuracy", "d_score", "in_band", "resid", "w1_a")

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
)
metrics = sa.Table(
    "metrics",
    meta,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    *(sa.Column(name, sa.Float) for name in METRIC_FIELDS),
    sa.Column("created_at", sa.Float, nullable=False),
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
)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _now() -> float:
    return time.time()


class Store:
    """All SQL of the service. Safe to use from several threads and several processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            # Writers take the lock up front: a deferred transaction that reads and then
            # writes can fail at once with SQLITE_BUSY instead of waiting its turn.
            self._read = _sqlite_engine(url, "BEGIN")
            self._write = _sqlite_engine(url, "BEGIN IMMEDIATE")
        else:
            self._read = self._write = sa.create_engine(url, pool_pre_ping=True)

    def create_schema(self) -> None:
        meta.create_all(self._write)

    def ping(self) -> bool:
        with self._read.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self._read.dispose()
        self._write.dispose()

    # ------------------------------------------------------------------ jobs
    def create_job(
        self,
        *,
        job_id: str,
        name: str | None,
        config: dict[str, Any],
        step: int,
        resumed_from: str | None,
        idempotency_key: str | None,
        request_hash: str | None,
        max_queued: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Inserts a queued job; returns (job, created). An existing job for the same
        Idempotency-Key and body is returned instead (created False)."""
        with self._write.begin() as conn:
            if idempotency_key is not None:
                row = (
                    conn.execute(sa.select(jobs).where(jobs.c.idempotency_key == idempotency_key))
                    .mappings()
                    .first()
                )
                if row is not None:
                    if row["request_hash"] != request_hash:
                        raise IdempotencyConflict(row["id"])
                    return self._job_out(conn, row), False
            if max_queued is not None:
                queued = conn.execute(
                    sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == QUEUED)
                ).scalar_one()
                if queued >= max_queued:
                    raise QueueFull(queued)
            seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(jobs.c.seq), 0))).scalar_one()
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    seq=seq + 1,
                    name=name,
                    state=QUEUED,
                    config=config,
                    steps=config["steps"],
                    step=step,
                    created_at=_now(),
                    resumed_from=resumed_from,
                    cancel_requested=False,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                )
            )
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().one()
            return self._job_out(conn, row), True

    def _job_out(self, conn: Connection, row: Any) -> dict[str, Any]:
        job = dict(row)
        job["latest_checkpoint"] = conn.execute(
            sa.select(checkpoints.c.id)
            .where(checkpoints.c.job_id == job["id"])
            .order_by(checkpoints.c.step.desc(), checkpoints.c.seq.desc())
            .limit(1)
        ).scalar()
        return job

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._read.begin() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
            return None if row is None else self._job_out(conn, row)

    def list_jobs(self, state: str | None, limit: int, offset: int) -> Page:
        cond = [jobs.c.state == state] if state else []
        with self._read.begin() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(*cond)
            ).scalar_one()
            rows = conn.execute(
                sa.select(jobs).where(*cond).order_by(jobs.c.seq.desc()).limit(limit).offset(offset)
            ).mappings()
            return Page([self._job_out(conn, r) for r in rows], total)

    def queued_job_ids(self, limit: int) -> list[str]:
        """The oldest queued jobs first: the queue is first in, first out."""
        with self._read.begin() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id).where(jobs.c.state == QUEUED).order_by(jobs.c.seq).limit(limit)
            )
            return [r[0] for r in rows]

    def job_ids_in_state(self, state: str) -> list[str]:
        with self._read.begin() as conn:
            return [r[0] for r in conn.execute(sa.select(jobs.c.id).where(jobs.c.state == state))]

    def transition(
        self, job_id: str, to: str, *, only_from: Iterable[str] | None = None, **fields: Any
    ) -> bool:
        """Moves a job to state ``to`` if an allowed edge leads there from its current state
        (and that state is in ``only_from``, when given), setting ``fields`` in the same
        statement. Returns False, changing nothing, otherwise."""
        allowed = TRANSITIONS[to] if only_from is None else TRANSITIONS[to] & set(only_from)
        values: dict[str, Any] = {"state": to, **fields}
        if to == RUNNING:
            values.setdefault("started_at", _now())
        if to in FINAL_STATES:
            values.setdefault("finished_at", _now())
        if to == QUEUED:
            values["cancel_requested"] = False
        with self._write.begin() as conn:
            result = conn.execute(
                jobs.update().where(jobs.c.id == job_id, jobs.c.state.in_(allowed)).values(**values)
            )
            return result.rowcount == 1

    def request_cancel(self, job_id: str) -> None:
        with self._write.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.not_in(FINAL_STATES))
                .values(cancel_requested=True)
            )

    def record_progress(self, job_id: str, step: int, row: dict[str, float]) -> None:
        """A logged step: appends the metrics row and updates the job, atomically."""
        values = {k: row[k] for k in METRIC_FIELDS}
        with self._write.begin() as conn:
            conn.execute(metrics.delete().where(metrics.c.job_id == job_id, metrics.c.step == step))
            conn.execute(
                metrics.insert().values(job_id=job_id, step=step, created_at=_now(), **values)
            )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == RUNNING)
                .values(
                    step=step,
                    metrics={k: row[k] for k in ("d_loss", "g_loss", "d_accuracy", "d_score")},
                    quality={k: row[k] for k in ("in_band", "resid", "w1_a")},
                )
            )

    def forget_metrics_after(self, job_id: str, step: int) -> None:
        """A resumed job replays steps after its checkpoint: drop the old rows for them."""
        with self._write.begin() as conn:
            conn.execute(metrics.delete().where(metrics.c.job_id == job_id, metrics.c.step > step))
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(step=step))

    def metrics_since(self, job_id: str, since_step: int, limit: int) -> list[dict[str, Any]]:
        with self._read.begin() as conn:
            rows = conn.execute(
                sa.select(metrics.c.step, *(metrics.c[k] for k in METRIC_FIELDS))
                .where(metrics.c.job_id == job_id, metrics.c.step > since_step)
                .order_by(metrics.c.step)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def delete_job(self, job_id: str) -> bool:
        """Deletes a final job and its metric history (its checkpoints stay)."""
        with self._write.begin() as conn:
            result = conn.execute(
                jobs.delete().where(jobs.c.id == job_id, jobs.c.state.in_(FINAL_STATES))
            )
            if result.rowcount != 1:
                return False
            conn.execute(metrics.delete().where(metrics.c.job_id == job_id))
            return True

    def counts_by_state(self) -> dict[str, int]:
        with self._read.begin() as conn:
            rows = conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state))
            counts = dict.fromkeys(STATES, 0)
            counts.update({state: n for state, n in rows})
            return counts

    def total_steps(self) -> int:
        with self._read.begin() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.sum(jobs.c.step), 0))).scalar_one()
            )

    # ------------------------------------------------------------------ checkpoints
    def add_checkpoint(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._write.begin() as conn:
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(checkpoints.c.seq), 0))
            ).scalar_one()
            values = {**record, "seq": seq + 1, "created_at": record.get("created_at") or _now()}
            conn.execute(checkpoints.insert().values(**values))
            return dict(
                conn.execute(sa.select(checkpoints).where(checkpoints.c.id == record["id"]))
                .mappings()
                .one()
            )

    def get_checkpoint(self, checkpoint_id: str) -> dict[str, Any] | None:
        with self._read.begin() as conn:
            row = (
                conn.execute(sa.select(checkpoints).where(checkpoints.c.id == checkpoint_id))
                .mappings()
                .first()
            )
            return None if row is None else dict(row)

    def list_checkpoints(self, job_id: str | None, limit: int, offset: int) -> Page:
        cond = [checkpoints.c.job_id == job_id] if job_id else []
        with self._read.begin() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(checkpoints).where(*cond)
            ).scalar_one()
            rows = conn.execute(
                sa.select(checkpoints)
                .where(*cond)
                .order_by(checkpoints.c.seq.desc())
                .limit(limit)
                .offset(offset)
            ).mappings()
            return Page([dict(r) for r in rows], total)

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        with self._write.begin() as conn:
            return (
                conn.execute(checkpoints.delete().where(checkpoints.c.id == checkpoint_id)).rowcount
                == 1
            )

    def checkpoint_ids(self) -> Iterable[str]:
        with self._read.begin() as conn:
            return [r[0] for r in conn.execute(sa.select(checkpoints.c.id))]


class QueueFull(Exception):
    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs queued")
        self.queued = queued
