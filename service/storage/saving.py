"""Saving a checkpoint: the file first, then its record, so a record never points at a missing
or partial file; a file whose record is refused is removed again. Pruning one: the record
first, then the file, so a crash in between leaves only a file with no record, which the
janitor removes."""

from __future__ import annotations

import contextlib

from gan_engine import Checkpoint

from ..domain import LOSS_FIELDS, QUALITY_FIELDS, CheckpointRecord, Lease
from ..domain.errors import InsufficientStorage
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
    max_data_bytes: int = 0,
) -> CheckpointRecord:
    """Stores ``data`` (or ``ckpt`` serialised) and records it. With ``lease`` the record is
    added only while the worker still holds the job (LeaseLost otherwise). With
    ``max_data_bytes``, InsufficientStorage, nothing stored, when the file would take the
    service's data past it."""
    data = ckpt.to_bytes() if data is None else data
    if max_data_bytes:
        check_data_cap(store, len(data), max_data_bytes)
    checkpoint_id = new_id("ck")
    size, sha = storage.put(checkpoint_id, data)
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


def check_data_cap(store: Store, adding: int, max_data_bytes: int) -> None:
    """InsufficientStorage when ``adding`` bytes would take the data the service keeps (see
    ``Store.data_bytes``: one sum over the records and a stat of the database's files, no
    walk of the files) past CURVEGAN_MAX_DATA_BYTES. Writers racing each other may pass it
    together: the cap can be overshot by the files being written at that moment."""
    used = store.data_bytes()
    if used + adding > max_data_bytes:
        raise InsufficientStorage(
            f"insufficient storage: this checkpoint ({adding} bytes) would take the server's "
            f"data to {used + adding} bytes, past CURVEGAN_MAX_DATA_BYTES ({max_data_bytes} "
            f"bytes; {used} in use); delete checkpoints or jobs, or raise the setting"
        )


def prune_checkpoints(
    store: Store, storage: CheckpointStorage, job_id: str, keep: int, lease: Lease | None = None
) -> int:
    """Deletes the job's checkpoints beyond its newest ``keep`` and its best (never one an
    unfinished job resumes from): the records, then the files. With ``lease``, only while the
    worker holds the job (LeaseLost otherwise). Returns how many."""
    pruned = store.prune_checkpoints(job_id, keep, lease=lease)
    for checkpoint_id in pruned:
        storage.delete(checkpoint_id)
    return len(pruned)
