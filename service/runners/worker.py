"""One claimed job through the engine's loop, whichever runner claimed it (a warm local
process or a Celery worker on another machine). Everything goes through the store: requests
(cancel, save now, suspend) arrive with each lease renewal, and every write is fenced by the
lease, so a worker that lost its job stops at its next write."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy.exc import DBAPIError

from gan_engine import Checkpoint, TrainConfig, TrainingDiverged, checkpoint_from_bytes
from gan_engine.population import Population

from ..domain import JobRecord, JobState, Lease
from ..storage import CheckpointStorage
from ..storage.diskfull import is_disk_full, without_paths
from ..storage.saving import save_checkpoint
from ..store import LeaseLost, Store

log = logging.getLogger("curvegan.worker")


def warm_up() -> None:
    """A process's first training run pays ~1 s of first use (torch's lazy imports behind
    the optimizer, first-call dispatch of every kernel): pay it when the worker starts, not
    in its first job. Runs in each worker process after any fork (a parent that ran torch
    ops could deadlock its forked children)."""
    trainer = Population([TrainConfig(steps=2, log_every=1, checkpoint_every=0, seed=0)])
    trainer.run()
    trainer.member_checkpoint(0).to_bytes()


@dataclass(frozen=True)
class WorkerContext:
    store: Store
    storage: CheckpointStorage
    lease_s: float

    @property
    def renew_every_s(self) -> float:
        # Three renewals per lease: one late renewal never loses it; capped at 1 s so that
        # a cancel reaches the job within about a second.
        return min(1.0, self.lease_s / 3)


def run_claimed(
    ctx: WorkerContext, lease: Lease, job: JobRecord, tick: Callable[[], None] | None = None
) -> JobState | None:
    """Trains the job; returns the state it ended in, or None when the lease was lost.
    ``tick`` is called between steps (the local pool's heartbeat)."""
    try:
        return _train(ctx, lease, job, tick)
    except LeaseLost:
        log.warning("job %s: lease %d lost; another worker owns it now", job.id, lease.attempt)
        return None
    except DBAPIError as exc:
        # The store is out of reach: nothing can be recorded, not even a failure. The job's
        # lease lapses and it resumes from its latest checkpoint once the store is back.
        log.error("job %s: the store failed (%s); leaving the job to its lease", job.id, exc)
        return None
    except TrainingDiverged as exc:
        return _fail(ctx, lease, str(exc))
    except Exception as exc:  # a job's failure must be recorded, whatever it was
        log.exception("job %s failed", job.id)
        return _fail(ctx, lease, without_paths(exc))


def save_or_skip(ctx: WorkerContext, lease: Lease, job_id: str, ckpt: Checkpoint) -> bool:
    """Saves the checkpoint; False, with nothing saved, when the disk is full: the job trains
    on and its next checkpoint tries again, instead of failing for want of space."""
    try:
        save_checkpoint(ctx.store, ctx.storage, ckpt, job_id=job_id, source="training", lease=lease)
    except (OSError, DBAPIError) as exc:
        if not is_disk_full(exc):
            raise
        log.error("job %s: no room for its checkpoint at step %d; training on", job_id, ckpt.step)
        return False
    return True


def _fail(ctx: WorkerContext, lease: Lease, error: str) -> JobState | None:
    try:
        ctx.store.finish(lease, JobState.FAILED, error)
    except (LeaseLost, DBAPIError):  # lost, or unrecordable: the lease decides
        return None
    return JobState.FAILED


def _train(
    ctx: WorkerContext, lease: Lease, job: JobRecord, tick: Callable[[], None] | None
) -> JobState:
    store = ctx.store
    config = TrainConfig.from_dict(job.config)
    start_from = job.latest_checkpoint or job.resumed_from
    # A job is a population of one: the engine's fast path (hand-derived backward pass,
    # ~2x the autograd Trainer's steps/s); its checkpoints are ordinary single-GAN ones.
    if start_from:
        try:
            data = ctx.storage.read(start_from)
        except FileNotFoundError:
            raise RuntimeError(
                f"the file of checkpoint {start_from} to resume from is missing"
            ) from None
        ckpt = checkpoint_from_bytes(data, odd_metrics="drop")
        # The job may train longer or log differently than the run that saved the checkpoint.
        trainer = Population.from_checkpoints([replace(ckpt, config=config)])
    else:
        trainer = Population([config])
    # An earlier holder may have logged steps past the checkpoint this run starts from.
    store.rewind(lease, trainer.step_count)

    requests = store.renew(lease, ctx.lease_s)
    # The claim reset the counter, so a request made since then is already pending.
    saves_seen = requests.save
    save_pending = requests.save > 0
    last_renewal = time.monotonic()

    def should_stop() -> bool:
        nonlocal requests, last_renewal, save_pending, saves_seen
        if tick is not None:
            tick()
        now = time.monotonic()
        if now - last_renewal >= ctx.renew_every_s:
            last_renewal = now
            requests = store.renew(lease, ctx.lease_s)  # LeaseLost ends the run here
            if requests.save > saves_seen:
                saves_seen, save_pending = requests.save, True
        return requests.cancel or requests.suspend

    def should_checkpoint() -> bool:
        nonlocal save_pending
        wanted, save_pending = save_pending, False
        return wanted

    unsaved = False  # whether the last checkpoint could not be written

    def on_checkpoint(cs: dict[int, Checkpoint]) -> None:
        nonlocal unsaved
        unsaved = not save_or_skip(ctx, lease, job.id, cs[0])

    result = trainer.run(
        on_log=lambda rs: store.record_progress(
            lease, rs[0].step, rs[0].to_dict(), trainer.preview(0)
        ),
        should_stop=should_stop,
        should_checkpoint=should_checkpoint,
        on_checkpoint=on_checkpoint,
    )
    if not result.stopped and unsaved:
        # Finished, but its final weights are nowhere: back to the queue, to train again
        # from its latest checkpoint once there is room.
        return store.release(lease)
    if not result.stopped:
        store.finish(lease, JobState.SUCCEEDED)
        return JobState.SUCCEEDED
    if requests.cancel:
        store.finish(lease, JobState.CANCELLED)
        return JobState.CANCELLED
    return store.release(lease)  # suspended: back to the queue (or cancelled meanwhile)
