"""What Client and AsyncClient do, written once and without I/O (httpx's BaseClient idea).

Every public method runs a *plan*: a generator that yields what it needs done (an effect:
send a request, read a stream's next line, close it, sleep) and is sent the answer, or has
the error thrown in. The plans hold every decision: retries, event streams, waiting. The
clients (client.py, aio.py) only do the effects, blocking or awaited; what each endpoint
sends and how its answer is read is in _calls.py.

Event streams, in both clients:
- The server ends a stream after its last frame: a final state, or "deleted".
- A stream that breaks, or ends after another frame (a server shutting down), or with a
  ``dropped`` frame (the server let go of a reader that fell behind; not handed on, nor read
  past), is opened again with Last-Event-ID (the last frame's id: a job's stream goes on
  after that step), up to ``retry.retries`` times in a row; each frame starts the count
  again. A stream that cannot be opened at all raises at once (wait() then polls).
- Silent for ``read_timeout`` (the server sends a keep-alive every 15 s): the path to the
  server is broken or buffering, so UnavailableError, not resumed.
- ``timeout``: checked on every line, keep-alives included, and no read waits past it (in
  the sync client, whose httpx read timeout is fixed when the response starts: per stream).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from . import _calls as calls
from ._retry import RETRY_STATUSES, RetryPolicy
from .errors import JobFailedError, UnavailableError, UsageError
from .models import FINAL_STATES, Event, Job, Sweep

DEFAULT_URL = "http://127.0.0.1:8000"
# The server sends a keep-alive comment every 15 s on an idle event stream.
KEEPALIVE_GRACE_S = 20.0

T = TypeVar("T")


# ---------------------------------------------------------------- effects
# What a plan asks its client to do, and what the client sends back.
@dataclass(frozen=True)
class Send:  # -> the Response, read; with stream: (the Response, its lines), an error's read
    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True)
class NextLine:  # -> the next line, None at the end; httpx.ReadTimeout after `within` s
    lines: Any
    within: float


@dataclass(frozen=True)
class Close:  # -> None
    response: httpx.Response


@dataclass(frozen=True)
class Sleep:  # -> None
    seconds: float


Effect = Send | NextLine | Close | Sleep
# A plan yields effects, and the events it reads (iter_events hands them on).
Plan = Generator[Effect | Event, Any, T]


class Step(Generic[T]):
    """A plan, walked: ``for effect in step`` gives what it yields; the client sets ``answer``
    (or ``error``) before the next. ``value``: what it returned. ``close()`` stops it and
    returns the streams it left open (its caller stopped early), for the client to close."""

    def __init__(self, plan: Plan[T]) -> None:
        self.plan = plan
        self.answer: Any = None
        self.error: Exception | None = None
        self.value: T
        self._open: list[httpx.Response] = []

    def __iter__(self) -> Iterator[Effect | Event]:
        answer, error = None, None
        while True:
            try:
                effect = self.plan.throw(error) if error is not None else self.plan.send(answer)
            except StopIteration as done:
                self.value = done.value
                return
            self.answer, self.error = None, None
            yield effect
            answer, error = self.answer, self.error
            if isinstance(effect, Send) and effect.stream and error is None:
                self._open.append(answer[0])
            elif isinstance(effect, Close):
                self._open.remove(effect.response)

    def close(self) -> list[httpx.Response]:
        self.plan.close()
        left, self._open = self._open, []
        return left


# ---------------------------------------------------------------- time
class Deadline:
    """A ``timeout`` in seconds from now (None: no deadline)."""

    def __init__(self, timeout: float | None) -> None:
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise UsageError(f"timeout must be > 0 seconds, got {timeout}")
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    @property
    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def bound(self, seconds: float) -> float:
        """``seconds``, or the time left when that is less (at least 0.01 s)."""
        return seconds if self.at is None else min(seconds, max(0.01, self.at - time.monotonic()))


# ---------------------------------------------------------------- server-sent events
class SseParser:
    """Feeds an event stream's lines (``event:``, ``data:``, ``id:``; a blank line ends a
    frame; ``:`` starts a comment, the server's keep-alive) and returns each complete Event."""

    def __init__(self) -> None:
        self.kind, self.data, self.event_id = "message", [], None

    def feed(self, line: str) -> Event | None:
        if not line:
            event = None
            if self.data:
                event = Event(
                    type=self.kind, data=json.loads("\n".join(self.data)), id=self.event_id
                )
            self.kind, self.data, self.event_id = "message", [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.kind = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.event_id = value
        return None


def is_last(event: Event) -> bool:
    """Whether a stream that ends after ``event`` is complete: a final state, or "deleted".
    (Not every final state is the last frame: a finished job's stream starts with one.)"""
    final = event.type in ("state", "sweep") and event.data.get("state") in FINAL_STATES
    return final or event.type == "deleted"


@dataclass
class _Resume:
    """Where a dropped stream goes on from."""

    last_id: str | None = None  # the last frame's: a job's metrics frames carry their step
    opened: bool = False
    drops: int = 0  # in a row: each frame starts the count again


def _late(owner: str, deadline: Deadline) -> TimeoutError:
    return TimeoutError(f"no end to the event stream of {owner} after {deadline.timeout}s")


# ---------------------------------------------------------------- the shared client
class BaseClient:
    """The plans behind the public methods of Client and AsyncClient. ``http`` is the
    subclass's httpx client: only its ``build_request`` (no I/O) is called here."""

    http: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        http: httpx.Client | httpx.AsyncClient,
        *,
        owns_http: bool,
        api_key: str | None,
        retry: RetryPolicy | None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._owns_http = owns_http
        self.http = http
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    def _sending(self, call: calls.Call) -> Plan[Any]:
        """Sends ``call``, again after a pause for as long as ``self.retry`` allows; returns its
        parsed answer or raises its error (errors.py)."""
        attempt = 0
        while True:
            request = self.http.build_request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                content=call.content,
                headers=call.headers,
            )
            try:
                resp = yield Send(request)
            except httpx.TransportError as exc:
                delay = self.retry.next_delay(attempt, call.idempotent, exc=exc)
                if delay is None:
                    raise UnavailableError(f"cannot reach {self.http.base_url}: {exc}") from exc
            else:
                delay = self.retry.next_delay(attempt, call.idempotent, resp=resp)
                if delay is None:
                    calls.raise_for_error(resp, attempt + 1)
                    return call.parse(resp)
            yield Sleep(delay)
            attempt += 1

    def _checking_health(self) -> Plan[bool]:
        try:
            resp = yield Send(self.http.build_request("GET", "/healthz"))
        except httpx.TransportError:
            return False
        return bool(resp.status_code == 200)

    def _downloading(self, checkpoint_id: str, path: str | Path | None) -> Plan[bytes | Path]:
        data = yield from self._sending(calls.download_checkpoint(checkpoint_id))
        if path is None:
            return data
        target = Path(path)
        target.write_bytes(data)
        return target

    # ------------------------------------------------------------ waiting
    def _waiting(
        self, job_id: str, timeout: float | None, poll_interval: float, raise_on_failure: bool
    ) -> Plan[Job]:
        deadline = Deadline(timeout)
        job = yield from self._sending(calls.get_job(job_id))
        if not job.is_final:
            # The stream is a convenience; polling below always works.
            with contextlib.suppress(TimeoutError, UnavailableError, httpx.HTTPError):
                yield from self._job_events(job_id, 0, deadline, KEEPALIVE_GRACE_S)
            job = yield from self._polling(calls.get_job, job_id, deadline, poll_interval, "job")
        if raise_on_failure and job.state == "failed":
            raise JobFailedError(job)
        return job

    def _waiting_sweep(
        self, sweep_id: str, timeout: float | None, poll_interval: float
    ) -> Plan[Sweep]:
        deadline = Deadline(timeout)
        with contextlib.suppress(TimeoutError, UnavailableError, httpx.HTTPError):
            last = yield from self._sweep_events(sweep_id, deadline, KEEPALIVE_GRACE_S)
            if last.type == "sweep":  # the last frame is the final sweep: no need to ask again
                return Sweep.model_validate(last.data)
        return (
            yield from self._polling(calls.get_sweep, sweep_id, deadline, poll_interval, "sweep")
        )

    def _polling(
        self,
        get: Callable[[str], calls.Call],
        item_id: str,
        deadline: Deadline,
        poll_interval: float,
        kind: str,
    ) -> Plan[Any]:
        """Asks for a job or a sweep until it is final."""
        item = yield from self._sending(get(item_id))
        while not item.is_final:
            if deadline.passed:
                raise TimeoutError(f"{kind} {item_id} still {item.state} after {deadline.timeout}s")
            yield Sleep(deadline.bound(poll_interval))
            item = yield from self._sending(get(item_id))
        return item

    # ------------------------------------------------------------ event streams
    def _job_events(
        self, job_id: str, since_step: int, timeout: float | Deadline | None, read_timeout: float
    ) -> Plan[Event]:
        path, params = calls.events_path(job_id, since_step)
        return (yield from self._following(path, params, job_id, timeout, read_timeout))

    def _sweep_events(
        self, sweep_id: str, timeout: float | Deadline | None, read_timeout: float
    ) -> Plan[Event]:
        path = calls.sweep_events_path(sweep_id)
        return (yield from self._following(path, None, sweep_id, timeout, read_timeout))

    def _following(
        self,
        path: str,
        params: dict[str, Any] | None,
        owner: str,
        timeout: float | Deadline | None,
        read_timeout: float,
    ) -> Plan[Event]:
        """Yields one stream's events up to its last frame, which it returns; resumes the
        stream when it drops (the rules in this module's docstring)."""
        deadline = timeout if isinstance(timeout, Deadline) else Deadline(timeout)
        resume, busy = _Resume(), None
        while True:
            read = httpx.Timeout(
                self.http.timeout.connect or 10.0, read=deadline.bound(read_timeout)
            )
            headers = {} if resume.last_id is None else {"Last-Event-ID": resume.last_id}
            request = self.http.build_request(
                "GET", path, params=params, headers=headers, timeout=read
            )
            try:
                resp, lines = yield Send(request, stream=True)
            except httpx.TransportError as exc:
                if not resume.opened:  # said at once: wait() polls instead
                    raise UnavailableError(f"event stream of {owner} broke: {exc}") from exc
                why = f"broke: {exc}"
            else:
                if resp.status_code < 400:
                    resume.opened = True
                    try:
                        why = yield from self._reading(lines, owner, deadline, read_timeout, resume)
                    except Exception:
                        yield Close(resp)
                        raise
                    yield Close(resp)
                    if isinstance(why, Event):
                        return why
                elif resume.opened and resp.status_code in RETRY_STATUSES:
                    busy, why = resp, f"was refused on resuming ({resp.status_code})"
                else:
                    raise calls.error_of(resp)
            if deadline.passed:
                raise _late(owner, deadline)
            if resume.drops >= self.retry.retries:
                raise UnavailableError(f"event stream of {owner} {why}")
            yield Sleep(deadline.bound(self.retry.delay(resume.drops, busy)))
            resume.drops += 1

    def _reading(
        self, lines: Any, owner: str, deadline: Deadline, read_timeout: float, resume: _Resume
    ) -> Plan[Event | str]:
        """Yields one connection's events until the server ends it; returns the last frame,
        or why the connection ended before it."""
        frames, last = SseParser(), None
        try:
            while (line := (yield NextLine(lines, deadline.bound(read_timeout)))) is not None:
                event = frames.feed(line)
                if event is not None and event.type == "dropped":
                    # The server let go of a reader that fell behind: a cut, whether or not
                    # it closes the connection; resumed from the last frame this client got.
                    return f"was dropped: {event.data.get('reason')}"
                if event is not None:
                    last, resume.drops = event, 0
                    resume.last_id = event.id or resume.last_id
                    yield event
                if deadline.passed:
                    raise _late(owner, deadline)
        except httpx.TimeoutException as exc:  # nothing, not even a keep-alive, in time
            if deadline.passed:
                raise _late(owner, deadline) from None
            silent = f"event stream of {owner} went silent for {read_timeout}s"
            raise UnavailableError(silent) from exc
        except httpx.TransportError as exc:
            return f"broke: {exc}"
        return last if last is not None and is_last(last) else "ended before its last frame"
