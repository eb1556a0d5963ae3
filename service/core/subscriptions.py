"""What a subscriber of the event hub (events.py) holds: the events, rendered once however
many subscribers share one, its buffer bounded in bytes, and the server's bound on streams."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..domain import TooManyStreams

KEEPALIVE_S = 15.0
# Rendered bytes a subscriber may have waiting before it is dropped (its client resumes with
# Last-Event-ID, from the store). The waiting events are shared by every subscriber of the
# job, so a bound in bytes, not in events, is what caps the memory one stalled reader holds
# on to: 2 MiB is ~4000 steps of a default job (~500 B a frame) and ~60 of one with
# n_points=1024 (~30 KB a frame), many seconds of a live figure either way.
MAX_PENDING_BYTES = 2 << 20

EventKind = Literal["state", "metrics", "sweep", "deleted", "dropped", "keepalive"]


@dataclass(frozen=True)
class Event:
    """``state``: a JobRecord; ``metrics``: a row dict (``id`` its step); ``sweep``: (the
    SweepRecord, its members' JobRecords); ``deleted``: the id; ``dropped``: {"reason",
    "last_event_id"}; ``keepalive``: nothing."""

    kind: EventKind
    data: Any = None
    id: int | None = None
    # renderer -> its text: an event shared by many subscribers is rendered once
    _frames: dict[Render, str] = field(default_factory=dict, compare=False, repr=False)

    def frame(self, render: Render) -> str:
        text = self._frames.get(render)
        if text is None:
            text = self._frames[render] = render(self)
        return text


Render = Callable[[Event], str]


def plain(event: Event) -> str:
    """The renderer of in-process use, with no HTTP edge: the data's repr (its size stands
    in for a frame's when the buffer is measured)."""
    return repr(event.data)


KEEPALIVE = Event("keepalive")


class Subscription:
    """One subscriber's events (an async iterator) and its buffer of the shared poll's
    updates. Dropped once the buffer passes its bound: the buffer is let go at once, ``cut``
    is set (the edge may stop a send its client never reads), and the events end with
    ``dropped``."""

    def __init__(self, render: Render, max_pending_bytes: int) -> None:
        self.render = render
        self.max_pending_bytes = max_pending_bytes
        self.last_id: int | None = None  # the last metrics step handed on
        self.live = True  # False: keep only the latest update (the reader is catching up)
        self.cut = asyncio.Event()
        self.reason = ""
        self._pending: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._events: AsyncGenerator[Event, None] | None = None

    def reading(self, events: AsyncGenerator[Event, None]) -> Subscription:
        """This subscriber, handing on ``events`` (which read its buffer)."""
        self._events = events
        return self

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        assert self._events is not None
        return await anext(self._events)

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def dropped(self) -> Event:
        return Event("dropped", {"reason": self.reason, "last_event_id": self.last_id})

    def push(self, update: Any, size: int) -> bool:
        """Buffers ``update``; False (and dropped) once the buffer passes its bound."""
        if not self.live:  # catching up: the latest update is enough (its gap is read)...
            self._pending.clear()
        self._pending.append((update, size))
        self._bytes += size  # ...but the bound counts all, or a stalled replay is never let go
        self._wake.set()
        if self._bytes <= self.max_pending_bytes:
            return True
        self.reason = (
            f"the reader fell behind: more than {self.max_pending_bytes} bytes of events "
            "waited to be sent; resume with Last-Event-ID"
        )
        self._pending.clear()
        self._bytes = 0
        self.cut.set()
        return False

    async def next(self) -> Any:
        """The next update; KEEPALIVE after KEEPALIVE_S without one; None once dropped."""
        while not self._pending:
            if self.cut.is_set():
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), KEEPALIVE_S)
            except TimeoutError:
                return KEEPALIVE
        update, size = self._pending.popleft()
        # Empty: the updates skipped while catching up are read too (as this one's gap).
        self._bytes = self._bytes - size if self._pending else 0
        return update


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
