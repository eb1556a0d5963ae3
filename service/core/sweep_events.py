"""Server-sent events for a sweep: a ``sweep`` frame (the Sweep) on connecting, one whenever a
member's state or step changes, and a last one when the sweep is final. Read from the store,
so they follow members whichever process or machine trains them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from ..api.schemas.sweeps import Sweep
from ..domain import JobRecord, SweepRecord, SweepStats
from ..store import Store
from .events import KEEPALIVE_S, frame

# Slower than a job's stream (0.2 s): a sweep's frame carries every member, and one poll reads
# all of them in one query.
POLL_S = 0.5


def _changes(members: list[JobRecord]) -> list[tuple[str, str, int]]:
    return [(job.id, job.state.value, job.step) for job in members]


async def sweep_stream(
    store: Store, sweep: SweepRecord, poll_s: float = POLL_S
) -> AsyncIterator[str]:
    """Ends after the frame with a final state (for a sweep already final, the first frame is
    also the last), or with a ``deleted`` frame if the sweep went away meanwhile."""
    members = await asyncio.to_thread(store.sweep_members, sweep.id)
    seen = _changes(members)
    yield frame("sweep", Sweep.of_members(sweep, members).model_dump(mode="json"))
    last_sent = time.monotonic()
    while not SweepStats.of_members(members).state.is_final:
        await asyncio.sleep(poll_s)
        try:
            members = await asyncio.to_thread(store.sweep_members, sweep.id)
        except Exception:  # a store hiccup: try again next poll, as the job streams do
            continue
        if not members:  # a sweep always has members: it was deleted
            yield frame("deleted", {"id": sweep.id})
            return
        now = _changes(members)
        if now != seen:
            seen = now
            last_sent = time.monotonic()
            yield frame("sweep", Sweep.of_members(sweep, members).model_dump(mode="json"))
        elif time.monotonic() - last_sent >= KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
