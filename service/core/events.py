"""Event streams of jobs and sweeps, read from the store, so they follow a job whichever
process or machine trains it.

A job's stream has a ``state`` event on connecting and at each change of state, and a
``metrics`` event per logged step (its row, and a few curves from the job's fixed evaluation
batch, so a live figure needs no request of its own). A sweep's stream has a ``sweep`` event
on connecting and at each change of a member's state or step. Both end after a final state,
with ``deleted``, or with ``dropped`` (the hub let go of a reader that fell behind; its client
resumes with Last-Event-ID).

One hub serves both: the subscribers of a job (or of a sweep) share one poll of the store, so
a hundred open streams cost the store, and the trainers writing to it, what one does. The
poll's events are shared too, and each is rendered once (by the renderer the edge passes in)
whatever the number of subscribers. A subscriber replays its job's history from the store a
page at a time, then follows the shared poll through a buffer bounded in bytes: memory per
subscriber stays bounded however long the history and however slowly its client reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gan_engine.metrics import PREVIEW_CURVES

from ..domain import JobRecord, SweepRecord, SweepStats
from ..store import Store
from .subscriptions import (
    KEEPALIVE,
    MAX_PENDING_BYTES,
    Event,
    Render,
    StreamSlots,
    Subscription,
    drain_all,
    plain,
)

__all__ = ["KEEPALIVE", "Event", "EventHub", "Render", "StreamSlots", "Subscription", "drain_all"]

POLL_S = 0.2
# Slower than a job's poll: a sweep's event carries every member, read in one query.
SWEEP_POLL_S = 0.5
# Decoded rows a replay (and the shared poll) reads at once: a row's preview curves are
# PREVIEW_CURVES lists of n_points Python floats (~32 B each), so a page is sized from the
# job's n_points: ~90 rows of a default job, one of a job with n_points=1024 (~130 KB). A
# subscriber holds at most one page beyond its buffer, whatever the length of the history:
# 50 stalled readers hold ~13 MB of pages at most.
PAGE_BYTES = 256 << 10
PAGE_ROWS = 250
DELETED: Any = object()  # published once the job or sweep is gone


@dataclass(frozen=True)
class _JobUpdate:
    """A page of rows the shared poll read, as shared events; ``state`` on a poll's last
    page only (a final state comes after every metrics event)."""

    job: JobRecord
    metrics: list[Event]
    since: int  # the step the poll had reached before this page
    state: Event | None


@dataclass(frozen=True)
class _SweepUpdate:
    event: Event
    members: list[JobRecord]


@dataclass
class _Watch:
    """One job's or sweep's shared poll, its subscribers, and (a sweep's) latest update."""

    key: str
    render: Render
    subscribers: set[Subscription] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    latest: _SweepUpdate | None = None


def _changes(members: list[JobRecord]) -> list[tuple[str, str, int]]:
    return [(job.id, job.state.value, job.step) for job in members]


def _page_rows(job: JobRecord) -> int:
    row_bytes = PREVIEW_CURVES * int(job.config.get("n_points", 15)) * 32 + 1024
    return max(1, min(PAGE_ROWS, PAGE_BYTES // row_bytes))


def _metrics(job: JobRecord, row: dict[str, Any]) -> Event:
    progress = min(1.0, row["step"] / job.steps)
    return Event("metrics", {**row, "state": job.state.value, "progress": progress}, row["step"])


class EventHub:
    def __init__(
        self,
        store: Store,
        *,
        max_streams: int,
        poll_s: float = POLL_S,
        sweep_poll_s: float = SWEEP_POLL_S,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.store = store
        self.poll_s = poll_s
        self.sweep_poll_s = sweep_poll_s
        self.max_pending_bytes = max_pending_bytes
        self.slots = StreamSlots(max_streams)  # all of this server's streams
        self._watches: dict[str, _Watch] = {}
        self.polls = 0  # store polls made for event streams, ever

    @property
    def watched(self) -> int:
        """Jobs and sweeps this server polls for its streams (one poll each)."""
        return len(self._watches)

    def job_events(self, job_id: str, since_step: int = 0, render: Render = plain) -> Subscription:
        """The first event is ``state`` with the job as it is on connecting; the last is a
        ``state`` with a final state, sent after every ``metrics`` (so a client that stops
        at the final state has seen all metrics). For a job already final both are the same."""
        sub = Subscription(render, self.max_pending_bytes)
        return sub.reading(self._job_events(job_id, since_step, sub))

    def sweep_events(self, sweep: SweepRecord, render: Render = plain) -> Subscription:
        """A ``sweep`` event on connecting and one per change of a member's state or step;
        ends after the one with a final state (for a sweep already final, the first), or
        with ``deleted`` if the sweep went away meanwhile."""
        sub = Subscription(render, self.max_pending_bytes)
        return sub.reading(self._sweep_events(sweep, sub))

    async def _job_events(
        self, job_id: str, since_step: int, sub: Subscription
    ) -> AsyncGenerator[Event, None]:
        key = f"job:{job_id}"
        sub.live = False
        self._subscribe(key, sub, lambda watch: self._poll_job(job_id, watch))
        try:
            # Subscribed first, then caught up: a row the catch-up misses is in a later poll.
            job = await asyncio.to_thread(self.store.get_job, job_id)
            if job is None:
                yield Event("deleted", job_id)
                return
            sent = job
            yield Event("state", job)
            last = since_step
            # The history a page at a time. Meanwhile the buffer keeps the poll's latest update
            # only (a long replay must not fill it); the rows before it are read as its gap.
            async for event in self._history(job, last, None):
                last = sub.last_id = event.id
                yield event
            sub.live = True
            if job.state.is_final and last > since_step:
                yield Event("state", job)
            while not job.state.is_final:
                update = await sub.next()
                if update is None:
                    yield sub.dropped()
                    return
                if update is KEEPALIVE:
                    yield KEEPALIVE
                    continue
                if update is DELETED:
                    yield Event("deleted", job_id)
                    return
                fresh = False
                if update.since > last:  # joined a running poll: the rows in between
                    async for event in self._history(update.job, last, update.since):
                        last = sub.last_id = event.id
                        fresh = True
                        yield event
                for event in update.metrics:
                    if event.id > last:
                        last = sub.last_id = event.id
                        fresh = True
                        yield event
                if update.state is None:
                    continue
                job = update.job
                if job.state != sent.state or (job.state.is_final and fresh):
                    sent = job
                    yield update.state
        finally:
            self._unsubscribe(key, sub)

    async def _history(
        self, job: JobRecord, after: int, upto: int | None
    ) -> AsyncGenerator[Event, None]:
        """The job's rows after step ``after`` (to ``upto``), one page in memory at a time."""
        limit = _page_rows(job)
        while True:
            rows = await asyncio.to_thread(self._rows, job.id, after, limit)
            for row in rows:
                if upto is not None and row["step"] > upto:
                    return
                after = row["step"]
                yield _metrics(job, row)
            if len(rows) < limit:
                return

    async def _sweep_events(
        self, sweep: SweepRecord, sub: Subscription
    ) -> AsyncGenerator[Event, None]:
        key = f"sweep:{sweep.id}"
        watch = self._subscribe(key, sub, lambda watch: self._poll_sweep(sweep, watch))
        try:
            # Subscribed first: any change after the poll's latest update reaches the buffer.
            if watch.latest is not None:  # shared, rendered already
                first, members = watch.latest.event, watch.latest.members
            else:
                members = await asyncio.to_thread(self.store.sweep_members, sweep.id)
                first = Event("sweep", (sweep, members))
            seen = _changes(members)
            yield first
            while not SweepStats.of_members(members).state.is_final:
                # The poll sends only changes: a silent wait is time for a keep-alive.
                update = await sub.next()
                if update is None:
                    yield sub.dropped()
                    return
                if update is KEEPALIVE:
                    yield KEEPALIVE
                    continue
                if update is DELETED:  # a sweep always has members: it was deleted
                    yield Event("deleted", sweep.id)
                    return
                members = update.members
                if _changes(members) != seen:
                    seen = _changes(members)
                    yield update.event
        finally:
            self._unsubscribe(key, sub)

    def _rows(self, job_id: str, since_step: int, limit: int) -> list[dict[str, Any]]:
        # With each row's preview curves: a live figure redraws from the events alone.
        return self.store.metrics_since(job_id, since_step, limit, curves=True)

    def _subscribe(
        self, key: str, sub: Subscription, poll: Callable[[_Watch], Awaitable[None]]
    ) -> _Watch:
        watch = self._watches.setdefault(key, _Watch(key, sub.render))
        watch.subscribers.add(sub)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(poll(watch), name=f"events-{key}")
        return watch

    def _unsubscribe(self, key: str, sub: Subscription) -> None:
        watch = self._watches.get(key)
        if watch is None or sub not in watch.subscribers:
            return
        watch.subscribers.discard(sub)
        if not watch.subscribers:
            del self._watches[key]
            if watch.task is not None:
                watch.task.cancel()

    def _publish(self, watch: _Watch, update: Any, events: list[Event]) -> None:
        """Renders ``events`` once, for every subscriber; drops those it would overfill."""
        size = sum(len(event.frame(watch.render)) for event in events)
        for sub in list(watch.subscribers):
            if not sub.push(update, size):  # its buffer is let go; its client may resume
                self._unsubscribe(watch.key, sub)

    async def _poll_job(self, job_id: str, watch: _Watch) -> None:
        cursor: int | None = None  # the last step this poll has read
        seen: JobRecord | None = None
        while watch.subscribers:
            await asyncio.sleep(self.poll_s)
            self.polls += 1
            with contextlib.suppress(Exception):  # a store hiccup: try again next poll
                job = await asyncio.to_thread(self.store.get_job, job_id)
                if job is None:
                    self._publish(watch, DELETED, [])
                    return
                if cursor is None:  # the first poll starts from the latest logged step
                    cursor = job.step
                # Read after the job: a job seen final has written all its metrics already.
                limit = _page_rows(job)
                while True:
                    rows = await asyncio.to_thread(self._rows, job_id, cursor, limit)
                    last_page = len(rows) < limit
                    if not rows and job == seen:
                        break  # no news: subscribers time their own keep-alives
                    metrics = [_metrics(job, row) for row in rows]
                    state = Event("state", job) if last_page else None
                    events = metrics + ([state] if state is not None else [])
                    self._publish(watch, _JobUpdate(job, metrics, cursor, state), events)
                    cursor = rows[-1]["step"] if rows else cursor
                    if last_page:
                        seen = job
                        break
                if job.state.is_final:
                    return

    async def _poll_sweep(self, sweep: SweepRecord, watch: _Watch) -> None:
        seen: list[tuple[str, str, int]] | None = None
        while watch.subscribers:
            await asyncio.sleep(self.sweep_poll_s)
            self.polls += 1
            with contextlib.suppress(Exception):  # a store hiccup: try again next poll
                members = await asyncio.to_thread(self.store.sweep_members, sweep.id)
                now = _changes(members)
                if now == seen:
                    continue  # subscribers time their own keep-alives
                seen = now
                if not members:
                    self._publish(watch, DELETED, [])
                    return
                update = _SweepUpdate(Event("sweep", (sweep, members)), members)
                watch.latest = update
                self._publish(watch, update, [update.event])
                if SweepStats.of_members(members).state.is_final:
                    return
