"""Server-sent events for a job: one per logged step (its metrics and a few generated curves
from the job's fixed evaluation batch, so a live figure needs no request of its own) and one
per state change, read from the store, so they follow a job whichever process or machine trains it.

Subscribers of a job share one poll of the store (``EventHub``): a hundred open streams cost
the store, and the trainer writing to it, what one does. Each subscriber reads its own
history once on connecting, then follows the shared poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..api.schemas.common import Job
from ..api.streams import StreamSlots
from ..domain import JobRecord
from ..store import Store

POLL_S = 0.2
KEEPALIVE_S = 15.0
# Polls a subscriber may fall behind before it is dropped (its client resumes with
# Last-Event-ID): a stalled reader must not hold memory without bound.
BACKLOG = 1000

# (the job, the rows logged since the poll before, the step that poll had reached)
_Update = tuple[JobRecord | None, list[dict[str, Any]], int]


def frame(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass
class _Watch:
    """One job's shared poll and its subscribers' queues."""

    subscribers: set[asyncio.Queue[_Update]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class EventHub:
    def __init__(self, store: Store, *, max_streams: int, poll_s: float = POLL_S) -> None:
        self.store = store
        self.poll_s = poll_s
        self.slots = StreamSlots(max_streams)  # all of this server's streams, sweeps' too
        self._watches: dict[str, _Watch] = {}
        self.polls = 0  # store polls made for event streams, ever

    @property
    def watched_jobs(self) -> int:
        return len(self._watches)

    async def stream(self, job_id: str, since_step: int = 0) -> AsyncIterator[str]:
        """The first frame is a ``state`` frame with the Job as it is on connecting; the last is
        a ``state`` frame with a final state, sent after every metrics frame (so a client that
        stops at the final state has seen all metrics). For a job already final both are the
        same Job."""
        queue: asyncio.Queue[_Update] = asyncio.Queue(BACKLOG)
        self._subscribe(job_id, queue)
        try:
            # Subscribed first, then caught up: a row the catch-up misses is in a later poll.
            job = await asyncio.to_thread(self.store.get_job, job_id)
            rows = await asyncio.to_thread(self._rows, job_id, since_step, 100_000)
            if job is None:
                yield frame("deleted", {"id": job_id})
                return
            sent = job
            yield frame("state", Job.of(job).model_dump(mode="json"))
            last_step = since_step
            while True:
                fresh = [r for r in rows if r["step"] > last_step]
                for row in fresh:
                    last_step = row["step"]
                    progress = min(1.0, row["step"] / job.steps)
                    data = {**row, "state": job.state.value, "progress": progress}
                    yield frame("metrics", data, row["step"])
                if job.state != sent.state or (job.state.is_final and fresh):
                    sent = job
                    yield frame("state", Job.of(job).model_dump(mode="json"))
                if job.state.is_final:
                    return
                if queue.empty() and not self._subscribed(job_id, queue):
                    return  # fell too far behind and was dropped: the client resumes
                try:
                    update = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    rows = []
                    continue
                latest, rows, polled_to = update
                if latest is None:  # deleted while we watched
                    yield frame("deleted", {"id": job_id})
                    return
                job = latest
                if polled_to > last_step:  # joined a running poll: read the rows in between
                    gap = await asyncio.to_thread(self._rows, job_id, last_step, 100_000)
                    rows = [r for r in gap if r["step"] <= polled_to] + rows
        finally:
            self._unsubscribe(job_id, queue)

    def _rows(self, job_id: str, since_step: int, limit: int) -> list[dict[str, Any]]:
        # With each row's preview curves: a live figure redraws from the frames alone.
        return self.store.metrics_since(job_id, since_step, limit, curves=True)

    def _subscribe(self, job_id: str, queue: asyncio.Queue[_Update]) -> None:
        watch = self._watches.setdefault(job_id, _Watch())
        watch.subscribers.add(queue)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(self._poll(job_id, watch), name=f"events-{job_id}")

    def _subscribed(self, job_id: str, queue: asyncio.Queue[_Update]) -> bool:
        watch = self._watches.get(job_id)
        return watch is not None and queue in watch.subscribers

    def _unsubscribe(self, job_id: str, queue: asyncio.Queue[_Update]) -> None:
        watch = self._watches.get(job_id)
        if watch is None:
            return
        watch.subscribers.discard(queue)
        if not watch.subscribers:
            del self._watches[job_id]
            if watch.task is not None:
                watch.task.cancel()

    async def _poll(self, job_id: str, watch: _Watch) -> None:
        cursor: int | None = None  # the last step this poll has read
        while watch.subscribers:
            await asyncio.sleep(self.poll_s)
            self.polls += 1
            with contextlib.suppress(Exception):  # a store hiccup: try again next poll
                job = await asyncio.to_thread(self.store.get_job, job_id)
                before = cursor
                rows: list[dict[str, Any]] = []
                if job is None:
                    before = cursor or 0
                elif cursor is None:  # the first poll starts from the latest logged step
                    before = cursor = job.step
                else:
                    # Read after the job: a job seen final has written all its metrics already.
                    rows = await asyncio.to_thread(self._rows, job_id, cursor, 10_000)
                    if rows:
                        cursor = rows[-1]["step"]
                assert before is not None
                for queue in list(watch.subscribers):
                    try:
                        queue.put_nowait((job, rows, before))
                    except asyncio.QueueFull:
                        watch.subscribers.discard(queue)  # its stream ends; it may resume
                if job is None or job.state.is_final:
                    return
