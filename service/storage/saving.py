"""Saving a checkpoint: the file first, then its record, so a record never points at a missing
or partial file; a file whose record is refused is removed again."""

from __future__ import annotations

import contextlib

from gan_engine import Checkpoint

from ..domain import LOSS_FIELDS, QUALITY_FIELDS, CheckpointRecord, Lease
from ..domain.records import new_id
from ..store import Store
from . import CheckpointStorage


def save_checkpoint(
    store: Store,
    storage: CheckpointStorage,
    ckpt: Checkpoint,
    *,
    job_id: str | None,
    source: str,
    data: bytes | None = None,
    lease: Lease | None = None,
) -> CheckpointRecord:
    """Stores ``data`` (or ``ckpt`` serialised) and records it. With ``lease`` the record is
    added only while the worker still holds the job (LeaseLost otherwise)."""
    checkpoint_id = new_id("ck")
    size, sha = storage.put(checkpoint_id, ckpt.to_bytes() if data is None else data)
    metrics = ckpt.metrics or {}
    try:
        return store.add_checkpoint(
            {
                "id": checkpoint_id,
                "job_id": job_id,
                "step": ckpt.step,
                "config": ckpt.config.to_dict(),
                "metrics": {k: metrics[k] for k in LOSS_FIELDS if k in metrics} or None,
                "quality": {k: metrics[k] for k in QUALITY_FIELDS if k in metrics} or None,
                "size_bytes": size,
                "sha256": sha,
                "source": source,
            },
            lease=lease,
        )
    except BaseException:
        with contextlib.suppress(OSError):
            storage.delete(checkpoint_id)
        raise
