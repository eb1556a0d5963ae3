"""Server-sent events for a job: one per logged step and one per state change, read from the
store (so they work whichever process or machine trains the job)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from .schemas import Job
from .store import Store

POLL_S = 0.2
KEEPALIVE_S = 15.0


def frame(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def job_events(store: Store, job_id: str, since_step: int = 0) -> AsyncIterator[str]:
    """The first frame is a ``state`` frame with the Job as it is on connecting; the last is a
    ``state`` frame with a final state, sent after every metrics frame (so a client that stops
    at the final state has seen all metrics). For a job already final both are the same Job."""
    sent_state: str | None = None
    last_step = since_step
    idle = 0.0
    while True:
        job = await asyncio.to_thread(store.get_job, job_id)
        if job is None:  # deleted while we watched
            yield frame("deleted", {"id": job_id})
            return
        if sent_state is None:
            sent_state = job.state
            yield frame("state", Job.of(job).model_dump(mode="json"))
        # Read after the job: a job seen final has written all its metrics already.
        rows = await asyncio.to_thread(store.metrics_since, job_id, last_step, 10_000)
        for row in rows:
            last_step = row["step"]
            progress = min(1.0, row["step"] / job.steps)
            yield frame(
                "metrics", {**row, "state": job.state.value, "progress": progress}, row["step"]
            )
        final = job.state.is_final
        if job.state != sent_state or (final and rows):
            sent_state = job.state
            yield frame("state", Job.of(job).model_dump(mode="json"))
        if final:
            return
        if rows:
            idle = 0.0
        else:
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)
