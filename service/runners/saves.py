"""A worker's writes of a job's checkpoints, and of the bounds on what a job leaves: a full disk
(or the data at CURVEGAN_MAX_DATA_BYTES) skips them, to be tried again, instead of failing
the job for want of space."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from gan_engine import Checkpoint

from ..domain import Lease
from ..domain.errors import InsufficientStorage
from ..storage.diskfull import is_disk_full
from ..storage.saving import prune_checkpoints, save_checkpoint
from .worker import WorkerContext

log = logging.getLogger("curvegan.worker")


def save_or_skip(ctx: WorkerContext, lease: Lease, job_id: str, ckpt: Checkpoint) -> bool:
    """Saves the checkpoint, then prunes the job's older ones (CURVEGAN_KEEP_CHECKPOINTS);
    False, with nothing saved, when the disk is full or the data would pass
    CURVEGAN_MAX_DATA_BYTES: the job trains on and its next checkpoint tries again, instead
    of failing for want of space."""
    try:
        save_checkpoint(
            ctx.store,
            ctx.storage,
            ckpt,
            job_id=job_id,
            source="training",
            lease=lease,
            max_data_bytes=ctx.max_data_bytes,
        )
    except (OSError, DBAPIError, InsufficientStorage) as exc:
        if not isinstance(exc, InsufficientStorage) and not is_disk_full(exc):
            raise
        log.error("job %s: no room for its checkpoint at step %d; training on", job_id, ckpt.step)
        return False
    tidy(
        job_id,
        lambda: prune_checkpoints(ctx.store, ctx.storage, job_id, ctx.keep_checkpoints, lease),
    )
    return True


def tidy(job_id: str, write: Callable[[], object]) -> None:
    """A write that bounds what a job leaves (pruning, trimming): a full disk only postpones it
    to the next time, instead of failing the job."""
    try:
        write()
    except (OSError, DBAPIError) as exc:
        if not is_disk_full(exc):
            raise
        log.error("job %s: no room to prune or trim its history; tried again later", job_id)
