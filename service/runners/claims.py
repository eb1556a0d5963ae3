"""What a worker takes from the queue: one job, or a sweep's member with the rest of its part
of the sweep, to train as one population (one process does K GANs' work at a fraction of K
jobs' cost)."""

from __future__ import annotations

from gan_engine.population import shape_key_of

from ..domain import JobRecord, Lease
from .worker import WorkerContext

Claimed = tuple[Lease, JobRecord]


def resumes(job: JobRecord) -> str | None:
    """The checkpoint the job trains on from: its latest, else the one it was created from."""
    return job.latest_checkpoint or job.resumed_from


def part_of(index: int, total: int, split: int, max_population: int) -> int:
    """The part of a sweep's ``total`` members of one shape that member ``index`` trains in:
    ``split`` parts per round, as few rounds as keep a part within ``max_population``, and
    parts that differ by at most one member (4 on 2: 2 + 2; 5 on 2: 3 + 2; 64 on 2 at most
    16: four parts of 16; 40 on 2 at most 16: four of 10). It depends on the sweep alone,
    not on what is still queued when a worker comes: no share is decided by timing."""
    split = max(1, split)
    rounds = -(-total // (split * max(1, max_population)))
    return index * split * rounds // total


def claim_members(ctx: WorkerContext, worker_id: str, job_id: str | None = None) -> list[Claimed]:
    """Claims a job (``job_id``, or the oldest queued) and, for a fresh sweep member, the
    queued fresh members of its part (``part_of`` with ``ctx.split`` and
    ``ctx.max_population``), all in one transaction, so two workers never share a part.
    Servers sharing a store should agree on both settings, or their parts overlap (each
    claim is still exact; the split is then uneven). A member that resumes from a
    checkpoint trains alone: a population's members share one step, and the others start
    at 0."""
    return ctx.store.claim_part(
        worker_id,
        ctx.lease_s,
        job_id,
        # From the stored configs, in the store's write lock: no config is built or checked.
        shape_of=shape_key_of,
        part_of=lambda i, n: part_of(i, n, ctx.split, ctx.max_population),
    )
