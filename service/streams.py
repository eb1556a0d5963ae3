"""A bound on the event streams one server holds open (CURVEGAN_MAX_EVENT_STREAMS).

A stream lasts as long as its job or sweep, hours maybe, and holds a connection and its own
frames all that time: without a bound, enough idle subscribers starve the server of file
descriptors and CPU. Each stream takes a slot before its response starts and gives it back
however it ends: run to its end, cut by its client, or never started at all.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .domain import TooManyStreams

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StreamSlots:
    """Counts this server's open event streams; safe from the threadpool and the event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

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


class _SlotStream(StreamingResponse):
    """An SSE response that gives its slot back once it is done, whatever ended it."""

    def __init__(self, slots: StreamSlots, content: AsyncIterator[str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=HEADERS)
        self._slots: StreamSlots | None = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()

    def _release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.give_back()

    def __del__(self) -> None:
        # A response dropped before it was served (its request failed in between) still
        # gives its slot back.
        self._release()


def event_stream(slots: StreamSlots, content: AsyncIterator[str]) -> StreamingResponse:
    """``content`` as a server-sent event stream holding a slot; 429 when none is free."""
    slots.take()
    try:
        return _SlotStream(slots, content)
    except BaseException:
        slots.give_back()
        raise
