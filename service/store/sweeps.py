"""Sweeps: a sweep row and its member jobs, created together in one transaction; a sweep's
state is derived from its members' rows whenever it is read, never stored."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..domain import FINAL_STATES, JobRecord, JobState, SweepRecord, SweepStats
from ..domain.states import check_transition
from .creation import check_room, lock_creators, replayed
from .rows import (
    JOB_SELECT,
    SWEEP_SELECT,
    Engines,
    Page,
    job_record,
    sweep_record,
)
from .tables import jobs, metrics, sweeps

_FINAL = [s.value for s in FINAL_STATES]
QUEUED = JobState.QUEUED.value


class SweepQueries(Engines):
    def create_sweep(
        self,
        *,
        sweep_id: str,
        name: str | None,
        config: dict[str, Any],
        best_by: str,
        members: Sequence[tuple[str, dict[str, Any]]],
        idempotency_key: str | None,
        request_hash: str | None,
        max_queued: int | None = None,
    ) -> tuple[SweepRecord, bool]:
        """Inserts the sweep and its ``members`` ((job id, complete config) each, in member
        order) as queued jobs, all or nothing; returns (sweep, created). An existing sweep for
        the same Idempotency-Key and request is returned instead (created False)."""
        with self._write.begin() as conn:
            lock_creators(conn)  # the lock create_job takes, over jobs and sweeps alike
            earlier = replayed(conn, sweeps, idempotency_key, request_hash)
            if earlier is not None:
                found = conn.execute(SWEEP_SELECT.where(sweeps.c.id == earlier)).one()
                return sweep_record(found), False
            check_room(conn, len(members), max_queued)  # a sweep is never queued in part
            now = time.time()
            sweep_seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(sweeps.c.seq), 0))
            ).scalar_one()
            conn.execute(
                sweeps.insert().values(
                    id=sweep_id,
                    seq=sweep_seq + 1,
                    name=name,
                    config=config,
                    best_by=best_by,
                    created_at=now,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                )
            )
            seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(jobs.c.seq), 0))).scalar_one()
            # Consecutive seqs: the first-in, first-out queue trains members in their order.
            conn.execute(  # members is never empty: the service refuses an empty sweep
                jobs.insert(),
                [
                    {
                        "id": job_id,
                        "seq": seq + 1 + index,
                        "name": name,
                        "state": QUEUED,
                        "config": job_config,
                        "steps": job_config["steps"],
                        "step": 0,
                        "created_at": now,
                        "resumed_from": None,
                        "cancel_requested": False,
                        "idempotency_key": None,
                        "request_hash": None,
                        "sweep_id": sweep_id,
                        "member_index": index,
                    }
                    for index, (job_id, job_config) in enumerate(members)
                ],
            )
            return sweep_record(
                conn.execute(SWEEP_SELECT.where(sweeps.c.id == sweep_id)).one()
            ), True

    def get_sweep(self, sweep_id: str) -> SweepRecord | None:
        with self._read.begin() as conn:
            row = conn.execute(SWEEP_SELECT.where(sweeps.c.id == sweep_id)).first()
            return None if row is None else sweep_record(row)

    def sweep_members(self, sweep_id: str) -> list[JobRecord]:
        """Every member in member order, in one query: the sweep's state, progress and best
        member all come from these rows."""
        with self._read.begin() as conn:
            rows = conn.execute(
                JOB_SELECT.where(jobs.c.sweep_id == sweep_id).order_by(jobs.c.member_index)
            )
            return [job_record(r) for r in rows]

    def list_sweeps(self, limit: int, offset: int) -> Page[tuple[SweepRecord, SweepStats]]:
        """Sweeps, newest first, each with its members' counts and progress (one aggregate
        query for the whole page, not one per sweep)."""
        with self._read.begin() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(sweeps)).scalar_one()
            records = [
                sweep_record(r)
                for r in conn.execute(
                    SWEEP_SELECT.order_by(sweeps.c.seq.desc()).limit(limit).offset(offset)
                )
            ]
            counts: dict[str, dict[str, int]] = {s.id: {} for s in records}
            progress = dict.fromkeys(counts, 0.0)
            if records:
                # steps >= 1 for every job (the engine refuses less), so the division is safe.
                share = sa.cast(jobs.c.step, sa.Float) / jobs.c.steps
                rows = conn.execute(
                    sa.select(jobs.c.sweep_id, jobs.c.state, sa.func.count(), sa.func.sum(share))
                    .where(jobs.c.sweep_id.in_(list(counts)))
                    .group_by(jobs.c.sweep_id, jobs.c.state)
                )
                for sweep_id, state, n, done in rows:
                    counts[sweep_id][state] = int(n)
                    progress[sweep_id] += float(done or 0.0)
            return Page([(s, SweepStats.of(counts[s.id], progress[s.id])) for s in records], total)

    def cancel_sweep(self, sweep_id: str) -> int:
        """JobService.cancel for every member at once: asks the running ones' workers to stop
        (through the store, wherever they run) and ends the queued ones, in one transaction.
        Returns how many members were not final."""
        with self._write.begin() as conn:
            asked = conn.execute(
                jobs.update()
                .where(jobs.c.sweep_id == sweep_id, jobs.c.state.not_in(_FINAL))
                .values(cancel_requested=True)
            ).rowcount
            # A queued job has no worker to stop it, and with cancel_requested set no worker
            # will claim it: it ends here, along the table's queued -> cancelled edge.
            check_transition(JobState.QUEUED, JobState.CANCELLED)
            conn.execute(
                jobs.update()
                .where(jobs.c.sweep_id == sweep_id, jobs.c.state == QUEUED)
                .values(
                    state=JobState.CANCELLED.value,
                    finished_at=time.time(),
                    lease_expires_at=None,
                )
            )
            return int(asked)

    def delete_sweep(self, sweep_id: str) -> bool:
        """Deletes a final sweep, its member jobs and their metric histories (their
        checkpoints stay); False, changing nothing, while any member is not final."""
        member_ids = sa.select(jobs.c.id).where(jobs.c.sweep_id == sweep_id)
        with self._write.begin() as conn:
            # No edge leaves a final state: members all final now stay final until commit.
            open_members = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.sweep_id == sweep_id, jobs.c.state.not_in(_FINAL))
            ).scalar_one()
            if open_members:
                return False
            conn.execute(metrics.delete().where(metrics.c.job_id.in_(member_ids)))
            conn.execute(jobs.delete().where(jobs.c.sweep_id == sweep_id))
            return conn.execute(sweeps.delete().where(sweeps.c.id == sweep_id)).rowcount == 1
