"""Event streams of jobs and sweeps, read from the store, so they follow a job whichever
process or machine trains it.

A job's stream has a ``state`` event on connecting and at each change of state, and a
``metrics`` event per logged step (its row, and a few curves from the job's fixed evaluation
batch, so a live figure needs no request of its own). A sweep's stream has a ``sweep`` event
on connecting and at each change of a member's state or step. Both end after a final state,
or with ``deleted``.

One hub serves both: the subscribers of a job (or of a sweep) share one poll of the store, so
a hundred open streams cost the store, and the trainers writing to it, what one does. Each
subscriber reads its own start once on connecting, then follows the shared poll. The events
are domain records; the HTTP edge writes them as server-sent event frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..domain import JobRecord, SweepRecord, SweepStats, TooManyStreams
from ..store import Store

POLL_S = 0.2
# Slower than a job's poll: a sweep's event carries every member, read in one query.
SWEEP_POLL_S = 0.5
KEEPALIVE_S = 15.0
# Polls a subscriber may fall behind before it is dropped (its client resumes with
# Last-Event-ID): a stalled reader must not hold memory without bound.
BACKLOG = 1000
# Rows a catch-up reads at most (a subscriber's start, a gap after joining a running poll).
CATCH_UP_ROWS = 100_000

EventKind = Literal["state", "metrics", "sweep", "deleted", "keepalive"]


@dataclass(frozen=True)
class Event:
    """``state``: a JobRecord; ``metrics``: a row dict (``id`` its step); ``sweep``: (the
    SweepRecord, its members' JobRecords); ``deleted``: the id; ``keepalive``: nothing."""

    kind: EventKind
    data: Any = None
    id: int | None = None


KEEPALIVE = Event("keepalive")

# (the job, the rows logged since the poll before, the step that poll had reached)
_JobUpdate = tuple[JobRecord | None, list[dict[str, Any]], int]


@dataclass
class _Watch:
    """One job's or sweep's shared poll and its subscribers' queues."""

    subscribers: set[asyncio.Queue[Any]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


# Every StreamSlots of this process, for drain_all().
_ALL: weakref.WeakSet[StreamSlots] = weakref.WeakSet()


def drain_all() -> None:
    """Ends every open event stream of this process, cleanly, and at once: called when the
    server starts shutting down. uvicorn waits for open responses to finish before it shuts
    the app down, and a stream finishes only with its job: one open dashboard would hold a
    SIGTERM until its job ended. A stream cut here has sent whole events only; its client
    reconnects with Last-Event-ID, to this server once it is back or to another."""
    for slots in list(_ALL):
        slots.draining.set()


class StreamSlots:
    """A bound on the event streams one server holds open (CURVEGAN_MAX_EVENT_STREAMS).

    A stream lasts as long as its job or sweep, hours maybe, and holds a connection all that
    time: without a bound, enough idle subscribers starve the server of file descriptors and
    CPU. Each stream takes a slot before its response starts and gives it back however it
    ends. Safe from the threadpool and the event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()
        self.draining = asyncio.Event()  # set by drain_all()
        _ALL.add(self)

    @property
    def open(self) -> int:
        return self._open

    def take(self) -> None:
        with self._lock:
            if self._open >= self.limit:
                raise TooManyStreams(
                    f"{self._open} event streams are open on this server, the most it holds "
                    f"(CURVEGAN_MAX_EVENT_STREAMS={self.limit}); retry later or poll instead"
                )
            self._open += 1

    def give_back(self) -> None:
        with self._lock:
            self._open -= 1


def _changes(members: list[JobRecord]) -> list[tuple[str, str, int]]:
    return [(job.id, job.state.value, job.step) for job in members]


class EventHub:
    def __init__(
        self,
        store: Store,
        *,
        max_streams: int,
        poll_s: float = POLL_S,
        sweep_poll_s: float = SWEEP_POLL_S,
    ) -> None:
        self.store = store
        self.poll_s = poll_s
        self.sweep_poll_s = sweep_poll_s
        self.slots = StreamSlots(max_streams)  # all of this server's streams
        self._watches: dict[str, _Watch] = {}
        self.polls = 0  # store polls made for event streams, ever

    @property
    def watched(self) -> int:
        """Jobs and sweeps this server polls for its streams (one poll each)."""
        return len(self._watches)

    async def job_events(self, job_id: str, since_step: int = 0) -> AsyncIterator[Event]:
        """The first event is ``state`` with the job as it is on connecting; the last is a
        ``state`` with a final state, sent after every ``metrics`` (so a client that stops
        at the final state has seen all metrics). For a job already final both are the same."""
        key = f"job:{job_id}"
        queue: asyncio.Queue[_JobUpdate] = asyncio.Queue(BACKLOG)
        self._subscribe(key, queue, lambda watch: self._poll_job(job_id, watch))
        try:
            # Subscribed first, then caught up: a row the catch-up misses is in a later poll.
            job = await asyncio.to_thread(self.store.get_job, job_id)
            rows = await asyncio.to_thread(self._rows, job_id, since_step, CATCH_UP_ROWS)
            if job is None:
                yield Event("deleted", job_id)
                return
            sent = job
            yield Event("state", job)
            last_step = since_step
            while True:
                fresh = [r for r in rows if r["step"] > last_step]
                for row in fresh:
                    last_step = row["step"]
                    progress = min(1.0, row["step"] / job.steps)
                    data = {**row, "state": job.state.value, "progress": progress}
                    yield Event("metrics", data, row["step"])
                if job.state != sent.state or (job.state.is_final and fresh):
                    sent = job
                    yield Event("state", job)
                if job.state.is_final:
                    return
                update = await self._next(key, queue)
                if update is None:
                    return  # fell too far behind and was dropped: the client resumes
                if update is KEEPALIVE:
                    yield KEEPALIVE
                    rows = []
                    continue
                latest, rows, polled_to = update
                if latest is None:  # deleted while we watched
                    yield Event("deleted", job_id)
                    return
                job = latest
                if polled_to > last_step:  # joined a running poll: read the rows in between
                    gap = await asyncio.to_thread(self._rows, job_id, last_step, CATCH_UP_ROWS)
                    rows = [r for r in gap if r["step"] <= polled_to] + rows
        finally:
            self._unsubscribe(key, queue)

    async def sweep_events(self, sweep: SweepRecord) -> AsyncIterator[Event]:
        """A ``sweep`` event on connecting and one per change of a member's state or step;
        ends after the one with a final state (for a sweep already final, the first), or
        with ``deleted`` if the sweep went away meanwhile."""
        key = f"sweep:{sweep.id}"
        queue: asyncio.Queue[list[JobRecord]] = asyncio.Queue(BACKLOG)
        self._subscribe(key, queue, lambda watch: self._poll_sweep(sweep.id, watch))
        try:
            members = await asyncio.to_thread(self.store.sweep_members, sweep.id)
            seen = _changes(members)
            yield Event("sweep", (sweep, members))
            while not SweepStats.of_members(members).state.is_final:
                # The poll sends only changes: a silent wait is time for a keep-alive.
                update = await self._next(key, queue)
                if update is None:
                    return  # fell too far behind and was dropped: the client reconnects
                if update is KEEPALIVE:
                    yield KEEPALIVE
                    continue
                members = update
                if not members:  # a sweep always has members: it was deleted
                    yield Event("deleted", sweep.id)
                    return
                if _changes(members) != seen:
                    seen = _changes(members)
                    yield Event("sweep", (sweep, members))
        finally:
            self._unsubscribe(key, queue)

    async def _next(self, key: str, queue: asyncio.Queue[Any]) -> Any:
        """The next update of the shared poll; KEEPALIVE after KEEPALIVE_S without one; None
        once this subscriber was dropped for falling too far behind (and has read all it
        was sent)."""
        if queue.empty() and not self._subscribed(key, queue):
            return None
        try:
            return await asyncio.wait_for(queue.get(), KEEPALIVE_S)
        except TimeoutError:
            return KEEPALIVE

    def _rows(self, job_id: str, since_step: int, limit: int) -> list[dict[str, Any]]:
        # With each row's preview curves: a live figure redraws from the events alone.
        return self.store.metrics_since(job_id, since_step, limit, curves=True)

    def _subscribe(
        self,
        key: str,
        queue: asyncio.Queue[Any],
        poll: Callable[[_Watch], Awaitable[None]],
    ) -> None:
        watch = self._watches.setdefault(key, _Watch())
        watch.subscribers.add(queue)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(poll(watch), name=f"events-{key}")

    def _subscribed(self, key: str, queue: asyncio.Queue[Any]) -> bool:
        watch = self._watches.get(key)
        return watch is not None and queue in watch.subscribers

    def _unsubscribe(self, key: str, queue: asyncio.Queue[Any]) -> None:
        watch = self._watches.get(key)
        if watch is None:
            return
        watch.subscribers.discard(queue)
        if not watch.subscribers:
            del self._watches[key]
            if watch.task is not None:
                watch.task.cancel()

    @staticmethod
    def _publish(watch: _Watch, update: Any) -> None:
        for queue in list(watch.subscribers):
            try:
                queue.put_nowait(update)
            except asyncio.QueueFull:
                watch.subscribers.discard(queue)  # its stream ends; it may resume

    async def _poll_job(self, job_id: str, watch: _Watch) -> None:
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
                self._publish(watch, (job, rows, before))
                if job is None or job.state.is_final:
                    return

    async def _poll_sweep(self, sweep_id: str, watch: _Watch) -> None:
        seen: list[tuple[str, str, int]] | None = None
        while watch.subscribers:
            await asyncio.sleep(self.sweep_poll_s)
            self.polls += 1
            with contextlib.suppress(Exception):  # a store hiccup: try again next poll
                members = await asyncio.to_thread(self.store.sweep_members, sweep_id)
                now = _changes(members)
                if now == seen:
                    continue  # subscribers time their own keep-alives
                seen = now
                self._publish(watch, members)
                if not members or SweepStats.of_members(members).state.is_final:
                    return
