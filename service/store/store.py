"""All SQL of the service (SQLAlchemy Core: SQLite by default, PostgreSQL for clusters).

Job states change only through edges in ``domain.TRANSITIONS``: the API's own moves go
through ``transition`` (or, for all of a sweep's queued members at once, the same
queued -> cancelled edge in sweeps.py); a worker's go through the lease methods (leases.py),
fenced by its claim. No edge leaves a final state, so a finished job can never be revived.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from .. import logs
from ..domain import (
    FINAL_STATES,
    METRIC_FIELDS,
    TRANSITIONS,
    CheckpointRecord,
    JobRecord,
    JobState,
    Lease,
)
from ..domain.states import check_transition
from .bounds import BoundQueries
from .creation import check_room, lock_creators, replayed
from .engine import make_engines
from .rows import (
    JOB_SELECT,
    Page,
    checkpoint_record,
    job_record,
)
from .schema import migrate
from .sweeps import SweepQueries
from .tables import checkpoints, jobs, metrics

_FINAL = [s.value for s in FINAL_STATES]
# The hottest reads (status polls, event streams, workers), built once with bound parameters:
# a statement built per call costs SQLAlchemy its cache key each time, half of the read.
_JOB_BY_ID = JOB_SELECT.where(jobs.c.id == sa.bindparam("job_id"))
_METRIC_COLUMNS = (metrics.c.step, *(metrics.c[k] for k in METRIC_FIELDS))


def _metrics_since(*columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
    return (
        sa.select(*columns)
        .where(metrics.c.job_id == sa.bindparam("job_id"), metrics.c.step > sa.bindparam("since"))
        .order_by(metrics.c.step)
        .limit(sa.bindparam("limit"))
    )


_METRICS_SINCE = _metrics_since(*_METRIC_COLUMNS)
_METRICS_WITH_CURVES_SINCE = _metrics_since(*_METRIC_COLUMNS, metrics.c.curves)


class CheckpointInUse(Exception):
    """An unfinished job resumes from the checkpoint, so it cannot be deleted."""

    def __init__(self, job_id: str, state: JobState) -> None:
        super().__init__(job_id)
        self.job_id, self.state = job_id, state


class MissingCheckpoint(LookupError):
    """The checkpoint a new job would resume from is gone."""


class Store(BoundQueries, SweepQueries):
    """Safe to use from several threads, processes and machines at once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._read, self._write = make_engines(url)

    @property
    def local(self) -> bool:
        """A file on this machine (SQLite): a short read answers in well under a
        millisecond, faster than the thread hop that keeps a network round trip off an event
        loop would cost."""
        return self._read.dialect.name == "sqlite"

    def migrate(self) -> None:
        migrate(self._write)

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
    ) -> tuple[JobRecord, bool]:
        """Inserts a queued job; returns (job, created). An existing job for the same
        Idempotency-Key and request is returned instead (created False)."""
        with self._write.begin() as conn:
            lock_creators(conn)
            earlier = replayed(conn, jobs, idempotency_key, request_hash)
            if earlier is not None:
                return job_record(conn.execute(JOB_SELECT.where(jobs.c.id == earlier)).one()), False
            check_room(conn, 1, max_queued)
            if resumed_from is not None and (
                conn.execute(
                    sa.select(checkpoints.c.id).where(checkpoints.c.id == resumed_from)
                ).first()
                is None
            ):
                raise MissingCheckpoint(resumed_from)  # deleted since the caller looked
            seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(jobs.c.seq), 0))).scalar_one()
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    seq=seq + 1,
                    name=name,
                    state=JobState.QUEUED.value,
                    config=config,
                    steps=config["steps"],
                    step=step,
                    created_at=time.time(),
                    resumed_from=resumed_from,
                    cancel_requested=False,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                )
            )
            return job_record(conn.execute(JOB_SELECT.where(jobs.c.id == job_id)).one()), True

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._read.begin() as conn:
            row = conn.execute(_JOB_BY_ID, {"job_id": job_id}).first()
            return None if row is None else job_record(row)

    def list_jobs(
        self,
        state: JobState | str | None,
        limit: int,
        offset: int,
        sweep_id: str | None = None,
    ) -> Page[JobRecord]:
        cond = [jobs.c.state == JobState(state).value] if state else []
        if sweep_id is not None:
            cond.append(jobs.c.sweep_id == sweep_id)
        with self._read.begin() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(*cond)
            ).scalar_one()
            rows = conn.execute(
                JOB_SELECT.where(*cond).order_by(jobs.c.seq.desc()).limit(limit).offset(offset)
            )
            return Page([job_record(r) for r in rows], total)

    def queued_job_ids(self, limit: int) -> list[str]:
        """The oldest queued jobs first: the queue is first in, first out."""
        with self._read.begin() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.state == JobState.QUEUED.value)
                .order_by(jobs.c.seq)
                .limit(limit)
            )
            return [r[0] for r in rows]

    def transition(
        self,
        job_id: str,
        to: JobState,
        *,
        only_from: Iterable[JobState] | None = None,
        **fields: Any,
    ) -> bool:
        """Moves a job to state ``to`` if an allowed edge leads there from its current state
        (and that state is in ``only_from``, when given), setting ``fields`` in the same
        statement. Returns False, changing nothing, otherwise."""
        to = JobState(to)
        allowed = TRANSITIONS[to] if only_from is None else TRANSITIONS[to] & set(only_from)
        values: dict[str, Any] = {"state": to.value, **fields}
        if to is JobState.RUNNING:
            values.setdefault("started_at", time.time())
        if to.is_final:
            values.setdefault("finished_at", time.time())
            values["lease_expires_at"] = None
        with self._write.begin() as conn:
            result = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.in_([s.value for s in allowed]))
                .values(**values)
            )
            return result.rowcount == 1

    def request_cancel(self, job_id: str) -> None:
        """Records the cancel; a queued job (no worker holds it) ends cancelled at once. One
        transaction: a cancel the store cannot record (a full disk) fails whole and the
        client is told, instead of a request half-made that no one would act on."""
        check_transition(JobState.QUEUED, JobState.CANCELLED)
        with self._write.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.not_in(_FINAL))
                .values(cancel_requested=True)
            )
            ended = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(
                    state=JobState.CANCELLED.value,
                    finished_at=time.time(),
                    lease_expires_at=None,
                )
            ).rowcount
        if ended:  # a running job's worker logs its own end
            logs.job_cancelled_while_queued(job_id)

    def request_save(self, job_id: str) -> bool:
        """Asks the running job's worker, wherever it is, to save at its next step."""
        with self._write.begin() as conn:
            return (
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value)
                    .values(save_requests=jobs.c.save_requests + 1)
                ).rowcount
                == 1
            )

    def metrics_since(
        self, job_id: str, since_step: int, limit: int, *, curves: bool = False
    ) -> list[dict[str, Any]]:
        """Logged rows after ``since_step``, ascending; with ``curves``, each row's preview
        curves too (None for rows logged before they were recorded)."""
        with self._read.begin() as conn:
            params = {"job_id": job_id, "since": since_step, "limit": limit}
            query = _METRICS_WITH_CURVES_SINCE if curves else _METRICS_SINCE
            result = conn.execute(query, params)
            # Plain tuples zipped with the names: half the cost of a RowMapping a row, which
            # counts for a stream's catch-up of up to 100 000 rows.
            names = list(result.keys())
            return [dict(zip(names, row, strict=True)) for row in result.all()]

    def delete_job(self, job_id: str) -> bool:
        """Deletes a final job and its metric history (its checkpoints stay)."""
        with self._write.begin() as conn:
            result = conn.execute(
                jobs.delete().where(jobs.c.id == job_id, jobs.c.state.in_(_FINAL))
            )
            if result.rowcount != 1:
                return False
            conn.execute(metrics.delete().where(metrics.c.job_id == job_id))
            return True

    def counts_by_state(self) -> dict[str, int]:
        with self._read.begin() as conn:
            rows = conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state))
            counts = dict.fromkeys((s.value for s in JobState), 0)
            counts.update({state: n for state, n in rows})
            return counts

    def total_steps(self) -> int:
        with self._read.begin() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.sum(jobs.c.step), 0))).scalar_one()
            )

    # ------------------------------------------------------------------ checkpoints
    def add_checkpoint(
        self, record: dict[str, Any], *, lease: Lease | None = None
    ) -> CheckpointRecord:
        """Inserts the record of a file already stored. With ``lease``, only while the worker
        still holds its job (raises LeaseLost otherwise, inserting nothing)."""
        with self._write.begin() as conn:
            if lease is not None:
                self._check_held(conn, lease)
            if self.is_postgres:  # as for jobs: seq stays unique across concurrent writers
                conn.execute(sa.text("LOCK TABLE checkpoints IN SHARE ROW EXCLUSIVE MODE"))
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(checkpoints.c.seq), 0))
            ).scalar_one()
            values = {
                **record,
                "seq": seq + 1,
                "created_at": record.get("created_at") or time.time(),
            }
            conn.execute(checkpoints.insert().values(**values))
            row = conn.execute(sa.select(checkpoints).where(checkpoints.c.id == record["id"])).one()
            return checkpoint_record(row)

    def get_checkpoint(self, checkpoint_id: str) -> CheckpointRecord | None:
        with self._read.begin() as conn:
            row = conn.execute(
                sa.select(checkpoints).where(checkpoints.c.id == checkpoint_id)
            ).first()
            return None if row is None else checkpoint_record(row)

    def list_checkpoints(
        self, job_id: str | None, limit: int, offset: int
    ) -> Page[CheckpointRecord]:
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
            )
            return Page([checkpoint_record(r) for r in rows], total)

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Deletes the record unless an unfinished job will resume from it (its latest, or
        the one it was created to resume from while it has none of its own): CheckpointInUse
        then. Checked in the same transaction, serialised with job creation, so that no job
        can come to depend on a checkpoint being deleted."""
        with self._write.begin() as conn:
            lock_creators(conn)
            owner = conn.execute(
                sa.select(checkpoints.c.job_id).where(checkpoints.c.id == checkpoint_id)
            ).first()
            if owner is None:
                return False
            # The worker resumes from ``latest_checkpoint or resumed_from``: the same rule.
            rows = conn.execute(
                JOB_SELECT.where(
                    jobs.c.state.not_in(_FINAL),
                    sa.or_(jobs.c.id == owner.job_id, jobs.c.resumed_from == checkpoint_id),
                )
            )
            for job in map(job_record, rows):
                if (job.latest_checkpoint or job.resumed_from) == checkpoint_id:
                    raise CheckpointInUse(job.id, job.state)
            return (
                conn.execute(checkpoints.delete().where(checkpoints.c.id == checkpoint_id)).rowcount
                == 1
            )
