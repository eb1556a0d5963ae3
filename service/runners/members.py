"""Several claimed jobs of one shape (members of a sweep) trained as one population: one
process does K GANs' work at a fraction of K jobs' cost. Each member keeps its own lease,
requests, metrics, checkpoints and final state; one member cancelled, fenced off or diverged
leaves the population while the others train on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gan_engine import Checkpoint, LogRecord, TrainConfig, TrainingDiverged
from gan_engine.population import Population, shape_key

from ..domain import JobRecord, JobState, Lease
from ..storage.diskfull import without_paths
from ..store import LeaseLost
from .worker import WorkerContext, run_claimed, save_or_skip

log = logging.getLogger("curvegan.worker")


def claim_members(
    ctx: WorkerContext, worker_id: str, workers: int, max_size: int, job_id: str | None = None
) -> list[tuple[Lease, JobRecord]]:
    """Claims a job (``job_id``, or the oldest queued) and, for a sweep's member, its queued
    siblings of the same shape: this worker's share when ``workers`` workers split the
    sweep's members (so a sweep fills the cores), at most ``max_size`` in all."""
    first = ctx.store.claim(worker_id, ctx.lease_s, job_id)
    if first is None:
        return []
    key = shape_key(TrainConfig.from_dict(first[1].config))
    siblings = ctx.store.claim_siblings(
        first[1],
        worker_id,
        ctx.lease_s,
        compatible=lambda config: shape_key(TrainConfig.from_dict(config)) == key,
        # An equal share of the sweep's members of this shape for each of ``workers``.
        how_many=lambda total: min(max_size, -(-total // max(1, workers))) - 1,
    )
    return [first, *siblings]


def run_members(
    ctx: WorkerContext,
    claimed: list[tuple[Lease, JobRecord]],
    tick: Callable[[], None] | None = None,
) -> list[str]:
    """Trains the claimed jobs together (a single one takes ``run_claimed``'s path); returns
    the jobs it put back in the queue (suspended), for a runner that must announce them."""
    if len(claimed) == 1:
        state = run_claimed(ctx, *claimed[0], tick=tick)
        return [claimed[0][1].id] if state is JobState.QUEUED else []
    store = ctx.store
    leases = {i: lease for i, (lease, _) in enumerate(claimed)}
    jobs = [job for _, job in claimed]
    pop = Population([TrainConfig.from_dict(job.config) for job in jobs])

    def lost(i: int, why: str) -> None:
        log.warning("job %s left its population: %s", jobs[i].id, why)
        leases.pop(i, None)
        pop.drop(i, why)

    def guarded(i: int, write: Callable[[], object]) -> None:
        """A member's own write; losing its lease ends that member only."""
        try:
            write()
        except LeaseLost:
            lost(i, "lease lost")

    for i, lease in list(leases.items()):
        guarded(i, lambda lease=lease: store.rewind(lease, 0))
    saves_seen = dict.fromkeys(leases, 0)
    unsaved: set[int] = set()  # members whose last checkpoint found the disk full
    save_pending: set[int] = set()
    suspend = False
    last_renewal = 0.0

    def finish(i: int, state: JobState, error: str | None = None) -> None:
        lease = leases.pop(i, None)
        if lease is not None:
            guarded(i, lambda: store.finish(lease, state, error))

    def should_stop() -> bool:
        nonlocal last_renewal, suspend
        if tick is not None:
            tick()
        now = time.monotonic()
        if now - last_renewal < ctx.renew_every_s:
            return suspend
        last_renewal = now
        # Every member's lease in one statement: a population's renewals cost one write.
        renewed = store.renew_many(list(leases.values()), ctx.lease_s)
        for i, lease in list(leases.items()):
            requests = renewed.get(lease.job_id)
            if requests is None:
                lost(i, "lease lost")
                continue
            if requests.cancel:
                # Its last checkpoint and state now; the others train on.
                ckpt = pop.member_checkpoint(i)
                guarded(
                    i,
                    lambda ckpt=ckpt, lease=lease, job=jobs[i]: save_or_skip(
                        ctx, lease, job.id, ckpt
                    ),
                )
                finish(i, JobState.CANCELLED)
                pop.drop(i, "cancelled")
                continue
            suspend = suspend or requests.suspend
            if requests.save > saves_seen[i]:
                saves_seen[i] = requests.save
                save_pending.add(i)
        return suspend

    def should_checkpoint() -> bool:
        return bool(save_pending)

    def on_log(records: dict[int, LogRecord]) -> None:
        held = [(i, r) for i, r in records.items() if i in leases]
        lost_ids = store.record_progress_many(
            [(leases[i], r.step, r.to_dict(), pop.preview(i)) for i, r in held]
        )
        for i, _ in held:
            if leases[i].job_id in lost_ids:
                lost(i, "lease lost")
        for i, why in list(pop.failed.items()):
            if i in leases and "diverged" in why:  # it fails now; the others train on
                finish(i, JobState.FAILED, why)

    def on_checkpoint(ckpts: dict[int, Checkpoint]) -> None:
        save_pending.clear()
        for i, ckpt in ckpts.items():
            if i not in leases:
                continue
            try:
                saved = save_or_skip(ctx, leases[i], jobs[i].id, ckpt)
            except LeaseLost:
                lost(i, "lease lost")
                continue
            if saved:
                unsaved.discard(i)
            else:
                unsaved.add(i)

    try:
        result = pop.run(
            on_log=on_log,
            should_stop=should_stop,
            should_checkpoint=should_checkpoint,
            on_checkpoint=on_checkpoint,
        )
    except TrainingDiverged:
        result = None  # every member diverged: each gets its own error below
    except Exception as exc:  # a failure of the population is every member's
        log.exception("population of %d jobs failed", len(jobs))
        for i in list(leases):
            finish(i, JobState.FAILED, without_paths(exc))
        return []
    for i, why in pop.failed.items():
        if "diverged" in why:
            finish(i, JobState.FAILED, why)
    requeued = []
    for i, lease in list(leases.items()):
        if result is not None and not result.stopped and i not in unsaved:
            finish(i, JobState.SUCCEEDED)
            continue
        # Stopped, or finished with its final weights unsaved: back to the queue.
        leases.pop(i)
        try:
            if store.release(lease) is JobState.QUEUED:
                requeued.append(lease.job_id)
        except LeaseLost:
            pass
    return requeued
