"""Leases: a worker claims a running job, renews it, and writes only while it still holds it.

A claim bumps the job's ``attempt``; every write a worker makes is conditioned on the job
being ``running`` under that attempt (fencing), so a worker that was paused or cut off while
its lease lapsed and the job moved on can no longer write progress, checkpoints or a state.
Expiry is compared with the database's clock. Every state a worker's job enters (claimed,
finished, back in the queue) is written by ``_move``, which allows only the edges of
``domain.TRANSITIONS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import logs
from ..domain import METRIC_FIELDS, JobRecord, JobState, Lease, Requests
from ..domain.states import check_transition
from .clock import db_now
from .parts import CLAIM_TRIES, Missed, part_members, pick
from .rows import JOB_SELECT, Engines, LeaseLost, job_record
from .tables import jobs, metrics, sweeps

RUNNING, QUEUED = JobState.RUNNING.value, JobState.QUEUED.value

Curves = list[list[float]]
# One member's logged step: its lease, the step, the metrics row and its preview curves.
Progress = tuple[Lease, int, dict[str, float], Curves | None]
# Decimals a preview curve keeps: a thousandth of a pixel on any figure, and the JSON of a
# row's curves half the size of full floats.
CURVE_DECIMALS = 5


def _rounded(curves: Curves | None) -> Curves | None:
    if curves is None:
        return None
    return [[round(v, CURVE_DECIMALS) for v in curve] for curve in curves]


def _attempt(lease: Lease) -> list[Any]:
    return [jobs.c.id == lease.job_id, jobs.c.attempt == lease.attempt]


def _held(lease: Lease) -> list[Any]:
    return [*_attempt(lease), jobs.c.state == RUNNING]


def _move(conn: Connection, frm: JobState, to: JobState, where: list[Any], **values: Any) -> int:
    """The one way this module changes a job's state: the rows of ``where`` still in ``frm``
    go to ``to``, setting ``values``, if TRANSITIONS has that edge (else IllegalTransition,
    before any SQL). Returns how many rows moved."""
    check_transition(frm, to)
    update = jobs.update().where(jobs.c.state == frm.value, *where)
    return conn.execute(update.values(state=to.value, **values)).rowcount


def _fenced_move(conn: Connection, lease: Lease, to: JobState, **values: Any) -> None:
    """``_move`` of the job a worker holds, out of running; raises LeaseLost if it no longer
    holds it."""
    if _move(conn, JobState.RUNNING, to, _attempt(lease), **values) != 1:
        raise LeaseLost(lease.job_id)


def _claimed(worker_id: str, lease_s: float) -> dict[str, Any]:
    """What a claim (queued -> running) writes: a new attempt under a fresh lease."""
    return {
        "worker_id": worker_id,
        "attempt": jobs.c.attempt + 1,
        "lease_expires_at": db_now() + lease_s,
        "started_at": time.time(),
        "suspend_requested": False,
        # Counted from the claim: the worker saves for every request after it.
        "save_requests": 0,
    }


class LeaseQueries(Engines):
    def claim(
        self, worker_id: str, lease_s: float, job_id: str | None = None
    ) -> tuple[Lease, JobRecord] | None:
        """Takes ``job_id``, or the oldest queued job, if it is queued and not cancelled."""
        with self._write.begin() as conn:
            if job_id is None:
                query = (
                    sa.select(jobs.c.id)
                    .where(jobs.c.state == QUEUED, jobs.c.cancel_requested == sa.false())
                    .order_by(jobs.c.seq)
                    .limit(1)
                )
                if self.is_postgres:  # claimers on other servers skip rows being taken
                    query = query.with_for_update(skip_locked=True)
                job_id = conn.execute(query).scalar()
                if job_id is None:
                    return None
            untouched = [jobs.c.id == job_id, jobs.c.cancel_requested == sa.false()]
            claimed = _claimed(worker_id, lease_s)
            if _move(conn, JobState.QUEUED, JobState.RUNNING, untouched, **claimed) != 1:
                return None
            job = job_record(conn.execute(JOB_SELECT.where(jobs.c.id == job_id)).one())
        logs.job_started(job.id, worker_id, job.attempt, job.step)
        return Lease(job_id, worker_id, job.attempt), job

    def claim_part(
        self,
        worker_id: str,
        lease_s: float,
        job_id: str | None,
        shape_of: Callable[[dict[str, Any]], Hashable],
        part_of: Callable[[int, int], int],
    ) -> list[tuple[Lease, JobRecord]]:
        """Takes ``job_id``, or the oldest queued job, and, for a fresh sweep member, the
        rest of its part of the sweep, each under its own lease, in one transaction.

        The sweep's members of the pick's shape (``shape_of`` a stored config), in any state,
        in creation order: the one at index i of n is in part ``part_of(i, n)``. A part is
        fixed by the sweep alone, and taken whole by whichever worker first claims one of
        its members, so shares are exact whatever the timing: claims of one sweep are
        serialised (SQLite's write lock; on PostgreSQL the sweep's row lock, always taken
        before any of its members' rows). Fresh members only (step 0, nothing to resume
        from); one that resumes trains alone."""
        for _ in range(CLAIM_TRIES):
            try:
                out = self._claim_part(worker_id, lease_s, job_id, shape_of, part_of)
            except Missed:
                continue
            for _, job in out:
                logs.job_started(job.id, worker_id, job.attempt, job.step)
            return out
        return []

    def _claim_part(
        self,
        worker_id: str,
        lease_s: float,
        job_id: str | None,
        shape_of: Callable[[dict[str, Any]], Hashable],
        part_of: Callable[[int, int], int],
    ) -> list[tuple[Lease, JobRecord]]:
        with self._write.begin() as conn:
            first = conn.execute(pick(job_id)).first()
            if first is None:
                return []
            ids = [first.id]
            if first.sweep_id is not None and first.fresh:
                lock = sa.select(sweeps.c.id).where(sweeps.c.id == first.sweep_id)
                conn.execute(lock.with_for_update())
                ids = part_members(conn, first, shape_of, part_of)
            # Missed rolls back: the pick, or one of its part, was taken or cancelled since
            # it was read (PostgreSQL reads the pick without a lock).
            if first.id not in ids:
                raise Missed
            untouched = [jobs.c.id.in_(ids), jobs.c.cancel_requested == sa.false()]
            claimed = _claimed(worker_id, lease_s)
            if _move(conn, JobState.QUEUED, JobState.RUNNING, untouched, **claimed) != len(ids):
                raise Missed
            rows = conn.execute(JOB_SELECT.where(jobs.c.id.in_(ids)).order_by(jobs.c.seq))
            return [(Lease(r.id, worker_id, r.attempt), r) for r in map(job_record, rows)]

    def renew(self, lease: Lease, lease_s: float) -> Requests:
        """Extends the lease; returns what the API asks of the job. Raises LeaseLost."""
        with self._write.begin() as conn:
            row = conn.execute(
                jobs.update()
                .where(*_held(lease))
                .values(lease_expires_at=db_now() + lease_s)
                .returning(jobs.c.cancel_requested, jobs.c.suspend_requested, jobs.c.save_requests)
            ).first()
            if row is None:
                raise LeaseLost(lease.job_id)
            return Requests(cancel=bool(row[0]), suspend=bool(row[1]), save=int(row[2]))

    def renew_many(self, leases: list[Lease], lease_s: float) -> dict[str, Requests]:
        """``renew`` for a population's members in one statement: the requests of each job
        still held; a job missing from the answer was lost."""
        if not leases:
            return {}
        with self._write.begin() as conn:
            rows = conn.execute(
                jobs.update()
                .where(
                    sa.tuple_(jobs.c.id, jobs.c.attempt).in_(
                        [(x.job_id, x.attempt) for x in leases]
                    ),
                    jobs.c.state == RUNNING,
                )
                .values(lease_expires_at=db_now() + lease_s)
                .returning(
                    jobs.c.id,
                    jobs.c.cancel_requested,
                    jobs.c.suspend_requested,
                    jobs.c.save_requests,
                )
            ).all()
        return {
            row[0]: Requests(cancel=bool(row[1]), suspend=bool(row[2]), save=int(row[3]))
            for row in rows
        }

    def record_progress_many(self, items: list[Progress]) -> set[str]:
        """``record_progress`` for a population's members in one transaction; returns the
        jobs whose lease was lost (nothing is written for them)."""
        lost: set[str] = set()
        with self._write.begin() as conn:
            for lease, step, row, curves in items:
                try:
                    self._write_progress(conn, lease, step, row, curves)
                except LeaseLost:
                    lost.add(lease.job_id)
        return lost

    def _check_held(self, conn: Connection, lease: Lease) -> None:
        # FOR UPDATE: a recovery pass on another connection waits until this write commits.
        query = sa.select(jobs.c.id).where(*_held(lease)).with_for_update()
        if conn.execute(query).first() is None:
            raise LeaseLost(lease.job_id)

    def _fenced_update(self, conn: Connection, lease: Lease, **values: Any) -> None:
        if conn.execute(jobs.update().where(*_held(lease)).values(**values)).rowcount != 1:
            raise LeaseLost(lease.job_id)

    def record_progress(
        self, lease: Lease, step: int, row: dict[str, float], curves: Curves | None = None
    ) -> None:
        """A logged step: appends the metrics row (with a few generated curves, for live
        figures) and updates the job, atomically."""
        with self._write.begin() as conn:
            self._write_progress(conn, lease, step, row, curves)

    def _write_progress(
        self,
        conn: Connection,
        lease: Lease,
        step: int,
        row: dict[str, float],
        curves: Curves | None,
    ) -> None:
        self._fenced_update(
            conn,
            lease,
            step=step,
            metrics={k: row[k] for k in ("d_loss", "g_loss", "d_accuracy", "d_score")},
            quality={k: row[k] for k in ("in_band", "resid", "w1_a")},
        )
        conn.execute(
            metrics.delete().where(metrics.c.job_id == lease.job_id, metrics.c.step == step)
        )
        conn.execute(
            metrics.insert().values(
                job_id=lease.job_id,
                step=step,
                created_at=time.time(),
                curves=_rounded(curves),
                **{k: row[k] for k in METRIC_FIELDS},
            )
        )

    def rewind(self, lease: Lease, step: int) -> None:
        """A resumed job replays the steps after its checkpoint: drop the old rows for them."""
        with self._write.begin() as conn:
            self._fenced_update(conn, lease, step=step)
            conn.execute(
                metrics.delete().where(metrics.c.job_id == lease.job_id, metrics.c.step > step)
            )

    def finish(self, lease: Lease, to: JobState, error: str | None = None) -> None:
        """The worker's last word: succeeded, failed or cancelled. Raises LeaseLost."""
        assert to.is_final
        with self._write.begin() as conn:
            _fenced_move(
                conn, lease, to, error=error, finished_at=time.time(), lease_expires_at=None
            )
            row = conn.execute(
                sa.select(jobs.c.step, jobs.c.metrics, jobs.c.quality).where(
                    jobs.c.id == lease.job_id
                )
            ).one()
        logs.job_ended(
            lease.job_id, to.value, logs.figures(row.step, row.metrics, row.quality), error
        )

    def release(self, lease: Lease) -> JobState:
        """The worker stops without finishing (suspended): back to the queue, or cancelled
        if a cancel arrived meanwhile. Returns the state the job went to."""
        with self._write.begin() as conn:
            # FOR UPDATE: a cancel committed between this read and the update below would
            # otherwise be lost, the job requeued with it (and so never claimed again).
            held = conn.execute(
                sa.select(jobs.c.cancel_requested, jobs.c.step)
                .where(*_held(lease))
                .with_for_update()
            ).first()
            if held is None:
                raise LeaseLost(lease.job_id)
            cancel, step = held
            to = JobState.CANCELLED if cancel else JobState.QUEUED
            values: dict[str, Any] = {"lease_expires_at": None, "suspend_requested": False}
            if to is JobState.CANCELLED:
                values["finished_at"] = time.time()
            _fenced_move(conn, lease, to, **values)
        if to is JobState.QUEUED:
            logs.job_requeued(lease.job_id, f"suspended at step {step} (its worker stops)")
        else:
            logs.job_ended(lease.job_id, to.value, f"step {step}", None)
        return to

    def recover_lapsed(
        self, max_losses: int, worker_ids: Iterable[str] | None = None
    ) -> dict[str, JobState]:
        """Jobs whose lease lapsed (or, with ``worker_ids``, whose worker is known dead) go back
        to the queue to resume from their latest checkpoint; a job already asked to cancel ends
        cancelled, and one that lost its worker ``max_losses`` times fails. Returns id -> state."""
        if worker_ids is None:
            lapsed = jobs.c.lease_expires_at < db_now()
        else:
            lapsed = jobs.c.worker_id.in_(list(worker_ids))
        moved: dict[str, JobState] = {}
        ended: dict[str, tuple[str, str | None]] = {}  # id -> (summary, error)
        with self._write.begin() as conn:
            # FOR UPDATE: as in release, a cancel must not slip in between read and update;
            # in seq order, so that two recovery passes lock rows in one order (no deadlock).
            # SKIP LOCKED: a row some writer holds now is taken at a later pass, not waited on.
            rows = conn.execute(
                sa.select(
                    jobs.c.id,
                    jobs.c.attempt,
                    jobs.c.cancel_requested,
                    jobs.c.lost_count,
                    jobs.c.step,
                )
                .where(jobs.c.state == RUNNING, lapsed)
                .order_by(jobs.c.seq)
                .with_for_update(skip_locked=True)
            ).all()
            for job_id, attempt, cancel, lost, step in rows:
                values: dict[str, Any] = {
                    "lease_expires_at": None,
                    "lost_count": lost + 1,
                    "suspend_requested": False,
                }
                if cancel:
                    to = JobState.CANCELLED
                elif lost + 1 >= max_losses:
                    to = JobState.FAILED
                    values["error"] = (
                        f"its worker was lost {lost + 1} times (died, hung or cut off); giving up"
                    )
                else:
                    to = JobState.QUEUED
                if to.is_final:
                    values["finished_at"] = time.time()
                this = [jobs.c.id == job_id, jobs.c.attempt == attempt, lapsed]
                if _move(conn, JobState.RUNNING, to, this, **values) == 1:
                    moved[job_id] = to
                    ended[job_id] = (f"step {step}, its worker lost", values.get("error"))
        for job_id, to in moved.items():
            if to is JobState.QUEUED:
                logs.job_requeued(job_id, "its worker was lost; it resumes from its checkpoint")
            else:
                logs.job_ended(job_id, to.value, *ended[job_id])
        return moved

    def request_suspend(self, worker_ids: Iterable[str]) -> int:
        """Asks the workers holding these ids to save and return their jobs to the queue."""
        with self._write.begin() as conn:
            return conn.execute(
                jobs.update()
                .where(jobs.c.state == RUNNING, jobs.c.worker_id.in_(list(worker_ids)))
                .values(suspend_requested=True)
            ).rowcount

    def request_suspend_prefix(self, prefix: str) -> int:
        """The same for every worker whose id starts with ``prefix`` (one Celery node)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._write.begin() as conn:
            return conn.execute(
                jobs.update()
                .where(jobs.c.state == RUNNING, jobs.c.worker_id.like(pattern, escape="\\"))
                .values(suspend_requested=True)
            ).rowcount

    def mark_published(self, job_ids: Iterable[str]) -> None:
        with self._write.begin() as conn:
            conn.execute(
                jobs.update().where(jobs.c.id.in_(list(job_ids))).values(published_at=time.time())
            )

    def queued_unpublished_since(self, before: float, limit: int = 1000) -> list[str]:
        """Queued jobs not announced to the broker since ``before``, oldest first."""
        with self._read.begin() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id)
                .where(
                    jobs.c.state == QUEUED,
                    sa.or_(jobs.c.published_at.is_(None), jobs.c.published_at < before),
                )
                .order_by(jobs.c.seq)
                .limit(limit)
            )
            return [r[0] for r in rows]
