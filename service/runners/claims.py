"""What a worker takes from the queue: one job, or a sweep's member with its queued siblings
of the same shape, to train as one population (one process does K GANs' work at a fraction
of K jobs' cost)."""

from __future__ import annotations

from gan_engine.population import shape_key_of

from ..domain import JobRecord, Lease
from .worker import WorkerContext

Claimed = tuple[Lease, JobRecord]


def resumes(job: JobRecord) -> str | None:
    """The checkpoint the job trains on from: its latest, else the one it was created from."""
    return job.latest_checkpoint or job.resumed_from


def claim_members(ctx: WorkerContext, worker_id: str, job_id: str | None = None) -> list[Claimed]:
    """Claims a job (``job_id``, or the oldest queued) and, for a fresh sweep member, its
    queued fresh siblings of the same shape: this worker's share when ``ctx.split`` workers
    split the sweep's members (so a sweep fills the cores), at most ``ctx.max_population``
    in all. A member that resumes from a checkpoint trains alone: a population's members
    share one step, and its siblings start at 0."""
    first = ctx.store.claim(worker_id, ctx.lease_s, job_id)
    if first is None:
        return []
    job = first[1]
    if resumes(job):
        return [first]
    # From the stored configs, in the store's write lock: no config is built or checked.
    key = shape_key_of(job.config)
    siblings = ctx.store.claim_siblings(
        job,
        worker_id,
        ctx.lease_s,
        compatible=lambda config: shape_key_of(config) == key,
        # An equal share of the sweep's members of this shape for each of ``split``.
        how_many=lambda total: min(ctx.max_population, -(-total // max(1, ctx.split))) - 1,
    )
    return [first, *siblings]
