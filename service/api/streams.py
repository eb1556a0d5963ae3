"""Event streams as server-sent events: the hub's domain events (core/events.py) written as
frames, in a response that holds one of the server's stream slots for as long as it runs.
The routes hand ``render`` to the hub, which renders each event its subscribers share once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from ..core.events import Event, StreamSlots, Subscription
from .schemas.jobs import Job
from .schemas.sweeps import Sweep

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# How long a dropped subscriber's stream may take to send its `dropped` frame on its own, and
# then to send it once cut: a client that reads nothing would hold a send (and the page its
# stream was at) for good; past these its connection is closed and the memory let go.
DROP_GRACE_S = 1.0


def frame(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def render(event: Event) -> str:
    """One event as its SSE frame: records in the API's own shapes (Job, Sweep)."""
    if event.kind == "keepalive":
        return ": keep-alive\n\n"
    if event.kind == "state":
        return frame("state", Job.of(event.data).model_dump(mode="json"))
    if event.kind == "sweep":
        return frame("sweep", Sweep.of_members(*event.data).model_dump(mode="json"))
    if event.kind == "deleted":
        return frame("deleted", {"id": event.data})
    return frame(event.kind, event.data, event.id)


async def _frames(events: Subscription) -> AsyncIterator[str]:
    async for event in events:
        yield event.frame(events.render)  # one string for all subscribers of a shared event


class _SlotStream(StreamingResponse):
    """An SSE response that gives its slot back once it is done, whatever ended it; it ends
    the stream of a subscriber the hub dropped even while its client reads nothing."""

    def __init__(self, slots: StreamSlots, events: Subscription) -> None:
        super().__init__(_frames(events), media_type="text/event-stream", headers=HEADERS)
        self._slots: StreamSlots | None = slots
        self._draining = slots.draining
        self._events = events

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
        cut = asyncio.ensure_future(self._events.cut.wait())
        try:
            await asyncio.wait({body, drained, cut}, return_when=asyncio.FIRST_COMPLETED)
            if cut.done() and not body.done():  # dropped: its last frame comes on its own...
                await asyncio.wait({body}, timeout=DROP_GRACE_S)
        finally:
            drained.cancel()
            cut.cancel()
            if not body.done():
                body.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await body
        if not body.cancelled():
            body.result()  # its own error, if it had one
            return
        with contextlib.suppress(RuntimeError):  # let go of its page now, not when collected
            await self._events.aclose()
        if not sent["start"]:  # drained before it started
            await send({"type": "http.response.start", "status": 503, "headers": []})
        if self._events.cut.is_set():  # ...or held by a client that reads nothing
            last = self._events.dropped().frame(self._events.render).encode()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_end(send, last), DROP_GRACE_S)
        elif not sent["end"]:  # drained: end the response as a stream ends, frames whole
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.give_back()

    def __del__(self) -> None:
        # A response dropped before it was served (its request failed in between) still
        # gives its slot back.
        self._release()


async def _end(send: Send, last: bytes) -> None:
    await send({"type": "http.response.body", "body": last, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def event_stream(slots: StreamSlots, events: Subscription) -> StreamingResponse:
    """``events`` as a server-sent event stream holding a slot; 429 when none is free."""
    slots.take()
    try:
        return _SlotStream(slots, events)
    except BaseException:
        slots.give_back()
        raise
