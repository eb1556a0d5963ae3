"""Files no record will ever point at: the temporary files of writers killed mid-write, and
checkpoint files whose record was never added (a crash between the file and its record) or
is gone (a crash between deleting, or pruning, the record and the file). Both are removed
once they are older than any live writer's could be, so a writer on this or another server
never loses its file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..storage import CheckpointStorage
from ..store import Store

log = logging.getLogger("curvegan.janitor")

# The longest a pass waits before the next: a stale file costs only space.
MAX_INTERVAL_S = 600.0


@dataclass(frozen=True)
class Swept:
    temp_files: int
    orphans: int


def sweep(store: Store, storage: CheckpointStorage, stale_after_s: float) -> Swept:
    """One pass: removes temp files and unrecorded checkpoint files older than
    ``stale_after_s``."""
    temp, old = storage.remove_stale(time.time() - stale_after_s)
    orphans = 0
    for checkpoint_id in old:
        # A record added since the listing keeps its file: the record is looked up last.
        if store.get_checkpoint(checkpoint_id) is None:
            storage.delete(checkpoint_id)
            orphans += 1
    if temp or orphans:
        log.warning(
            "removed %d temporary file(s) of interrupted writes and %d unrecorded checkpoint "
            "file(s)",
            temp,
            orphans,
        )
    return Swept(temp, orphans)


async def run_janitor(store: Store, storage: CheckpointStorage, stale_after_s: float) -> None:
    """A pass at start-up, then every half of ``stale_after_s`` (at most MAX_INTERVAL_S), so a
    file is gone at most 1.5 times its age limit after its writer died."""
    interval = min(MAX_INTERVAL_S, stale_after_s / 2)
    while True:
        try:
            await asyncio.to_thread(sweep, store, storage, stale_after_s)
        except Exception:  # a store or disk down for a while: the next pass tries again
            log.exception("janitor pass failed")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def janitor(
    store: Store, storage: CheckpointStorage, stale_after_s: float
) -> AsyncIterator[asyncio.Task[None]]:
    """Runs the janitor for the lifetime of the block."""
    task = asyncio.create_task(run_janitor(store, storage, stale_after_s), name="curvegan-janitor")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
