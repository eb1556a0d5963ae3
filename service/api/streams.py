"""A bound on the event streams one server holds open (CURVEGAN_MAX_EVENT_STREAMS).

A stream lasts as long as its job or sweep, hours maybe, and holds a connection and its own
frames all that time: without a bound, enough idle subscribers starve the server of file
descriptors and CPU. Each stream takes a slot before its response starts and gives it back
however it ends: run to its end, cut by its client, or never started at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from ..domain import TooManyStreams

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# Every StreamSlots of this process, for drain_all().
_ALL: weakref.WeakSet[StreamSlots] = weakref.WeakSet()


def drain_all() -> None:
    """Ends every open event stream of this process, cleanly, and at once: called when the
    server starts shutting down. uvicorn waits for open responses to finish before it shuts
    the app down, and a stream finishes only with its job: one open dashboard would hold a
    SIGTERM until its job ended. A stream cut here has sent whole frames only; its client
    reconnects with Last-Event-ID, to this server once it is back or to another."""
    for slots in list(_ALL):
        slots.draining.set()


class StreamSlots:
    """Counts this server's open event streams; safe from the threadpool and the event loop."""

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


class _SlotStream(StreamingResponse):
    """An SSE response that gives its slot back once it is done, whatever ended it."""

    def __init__(self, slots: StreamSlots, content: AsyncIterator[str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=HEADERS)
        self._slots: StreamSlots | None = slots
        self._draining = slots.draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._until_drained(scope, receive, send)
        finally:
            self._release()

    async def _until_drained(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = {"start": False, "end": False}

        async def tracked(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                sent["start"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                sent["end"] = True

        body = asyncio.ensure_future(super().__call__(scope, receive, tracked))
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({body, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not body.done():
                body.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await body
        if body.cancelled():  # drained: end the response as a stream ends, frames whole
            if not sent["start"]:
                await send({"type": "http.response.start", "status": 503, "headers": []})
            if not sent["end"]:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            body.result()  # its own error, if it had one

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
