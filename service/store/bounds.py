"""What one job may leave in the store, bounded whatever its steps, log_every and n_points:
its metric history thinned past a row cap, its preview curves kept on its newest rows only,
and its checkpoints pruned to the newest few and its best. And the bytes the service keeps,
for CURVEGAN_MAX_DATA_BYTES."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import FINAL_STATES, Lease
from ..domain.sweeps import BEST_BY, DEFAULT_BEST_BY
from .creation import lock_creators
from .leases import LeaseQueries
from .tables import checkpoints, jobs, metrics, sweeps

# Rows that keep their preview curves: a live figure redraws from the newest, and with
# n_points=1024 a row's curves are ~30 KB, against ~100 bytes for the rest of the row.
CURVE_ROWS = 64

_FINAL = [s.value for s in FINAL_STATES]


def thinning_stride(steps: Sequence[int], target: int) -> tuple[int, int, int]:
    """How to thin a job's logged ``steps`` (ascending) to about ``target`` rows: the first
    row and the newest ``target // 2`` stay; of the rows between, those whose step is a
    multiple of the returned stride (the smallest power of two that fits the rest of the
    target, and never finer than an earlier thinning's), so the whole older history shares one
    stride and the run stays evenly represented however long it runs. Returns (stride, first
    step, first recent step)."""
    recent = max(1, target // 2)
    first, recent_from = steps[0], steps[-recent]
    older = steps[1:-recent]
    budget = max(0, target - recent - 1)
    # Never finer than an earlier thinning left the oldest rows, or the history would grow
    # denser towards the present: the row after the first is a multiple of that stride.
    stride = max(2, (older[0] & -older[0]) if older and older[0] > 0 else 2)
    while sum(1 for s in older if s % stride == 0) > budget:
        stride *= 2
    return stride, first, recent_from


class BoundQueries(LeaseQueries):
    def trim_metrics(self, lease: Lease, max_rows: int, curve_rows: int = CURVE_ROWS) -> int:
        """Drops the preview curves of all but the job's newest ``curve_rows`` rows, and past
        ``max_rows`` rows thins its older history to about half of ``max_rows`` (see
        ``thinning_stride``): its first and newest rows always stay, and each kept row keeps
        its true step, so paging by ``since_step`` reads the thinned history as it is. Only
        while the worker holds the job (LeaseLost otherwise); returns the rows deleted."""
        where = metrics.c.job_id == lease.job_id
        with self._write.begin() as conn:
            self._check_held(conn, lease)
            steps = list(
                conn.execute(
                    sa.select(metrics.c.step).where(where).order_by(metrics.c.step)
                ).scalars()
            )
            if len(steps) > curve_rows:
                conn.execute(
                    metrics.update()
                    .where(
                        where,
                        metrics.c.step < steps[-curve_rows],
                        metrics.c.curves.is_not(None),
                    )
                    .values(curves=sa.null())
                )
            if len(steps) <= max_rows:
                return 0
            stride, first, recent_from = thinning_stride(steps, max_rows // 2)
            return conn.execute(
                metrics.delete().where(
                    where,
                    metrics.c.step > first,
                    metrics.c.step < recent_from,
                    metrics.c.step % stride != 0,
                )
            ).rowcount

    def prune_checkpoints(self, job_id: str, keep: int, *, lease: Lease | None = None) -> list[str]:
        """Deletes the records of the job's checkpoints beyond its newest ``keep`` (``keep``
        >= 1, so its latest stays) and its best, except any an unfinished job was created to
        resume from; returns their ids, for the caller to delete the files after (a crash in
        between leaves files with no record, which the janitor removes). Checked under the
        lock job creation takes, as ``delete_checkpoint`` does, so that no job can come to
        resume from a checkpoint being deleted. With ``lease``, only while the worker still
        holds the job (LeaseLost otherwise): a worker paused past its lease must not prune
        what the job's new owner saves."""
        with self._read.begin() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).where(checkpoints.c.job_id == job_id)
            ).scalar_one()
        if total <= keep:  # the common case, without taking the creators' lock
            return []
        with self._write.begin() as conn:
            if lease is not None:
                self._check_held(conn, lease)
            lock_creators(conn)
            rows = conn.execute(
                sa.select(
                    checkpoints.c.id,
                    checkpoints.c.step,
                    checkpoints.c.metrics,
                    checkpoints.c.quality,
                )
                .where(checkpoints.c.job_id == job_id)
                .order_by(checkpoints.c.step.desc(), checkpoints.c.seq.desc())
            ).all()
            older = rows[keep:]
            best = _best(conn, job_id, rows)
            doomed = [r.id for r in older if r.id != best]
            if not doomed:
                return []
            in_use = set(
                conn.execute(
                    sa.select(jobs.c.resumed_from).where(
                        jobs.c.state.not_in(_FINAL), jobs.c.resumed_from.in_(doomed)
                    )
                ).scalars()
            )
            doomed = [d for d in doomed if d not in in_use]
            if doomed:
                conn.execute(checkpoints.delete().where(checkpoints.c.id.in_(doomed)))
            return doomed

    def data_bytes(self) -> int:
        """The bytes the service keeps: its checkpoint files, as recorded (no walk of the
        files), and the SQLite database's files where the store is one (a PostgreSQL server
        keeps its own disk)."""
        with self._read.begin() as conn:
            files = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(checkpoints.c.size_bytes), 0))
            ).scalar_one()
        database = self._write.url.database if self._write.dialect.name == "sqlite" else None
        total = int(files)
        if database and database != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(database + suffix).st_size
        return total


def _best(conn: Connection, job_id: str, rows: Sequence[Any]) -> str | None:
    """The job's best checkpoint by its sweep's ``best_by`` (``w1_a`` for a job of its own),
    read from the figures each checkpoint recorded (the job's last logged step before it);
    a tie goes to the newer; None when none recorded the metric."""
    best_by = conn.execute(
        sa.select(sweeps.c.best_by)
        .join(jobs, jobs.c.sweep_id == sweeps.c.id)
        .where(jobs.c.id == job_id)
    ).scalar()
    name = best_by if best_by in BEST_BY else DEFAULT_BEST_BY
    criterion = BEST_BY[name]
    found: tuple[float, str] | None = None
    for row in rows:  # newest first: a later one wins a tie only by coming first
        figures = row.quality if criterion.source == "quality" else row.metrics
        value = figures.get(name) if isinstance(figures, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        badness = criterion.badness(float(value))
        if found is None or badness < found[0]:
            found = (badness, row.id)
    return None if found is None else found[1]
