"""Client and AsyncClient are twins: the same public methods with the same signatures and
docstrings, the same requests sent, and the same events, results and errors from the same
answers. Each scenario runs both clients against one script of answers (httpx.MockTransport,
no server) and compares what they did; it also says what that must be, so that both cannot
drift the same wrong way."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from curvegan import (
    AsyncClient,
    Client,
    Event,
    Job,
    NotFoundError,
    RetryPolicy,
    Sweep,
    UnavailableError,
)

# What the two spell differently on purpose.
ASYNC_NAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
STREAMS = {"iter_events", "iter_sweep_events"}


def public(cls: type) -> dict[str, Callable[..., Any]]:
    names = [n for n in vars(cls) if not n.startswith("_") or n in ("__init__", "__enter__")]
    names += [n for n in ("__exit__", "__aenter__", "__aexit__") if n in vars(cls)]
    return {n: getattr(cls, n) for n in names if callable(getattr(cls, n))}


def sync_spelling(annotation: Any) -> str:
    """An async annotation as its sync twin writes it."""
    text = str(annotation)
    text = re.sub(r"\bAwaitable\[(.*)\]$", r"\1", text)
    return text.replace("AsyncIterator", "Iterator").replace("AsyncClient", "Client")


SYNC, ASYNC = public(Client), public(AsyncClient)
PAIRS = [(name, ASYNC_NAMES.get(name, name)) for name in SYNC]


def test_the_same_public_methods() -> None:
    assert sorted(ASYNC_NAMES.get(name, name) for name in SYNC) == sorted(ASYNC)


@pytest.mark.parametrize(("name", "twin"), PAIRS, ids=[p[0] for p in PAIRS])
def test_the_same_signature_and_docstring(name: str, twin: str) -> None:
    sync, aio = inspect.signature(SYNC[name]), inspect.signature(ASYNC[twin])
    assert [(p.name, p.kind, p.default) for p in sync.parameters.values()] == [
        (p.name, p.kind, p.default) for p in aio.parameters.values()
    ]
    assert [str(p.annotation) for p in sync.parameters.values()] == [
        sync_spelling(p.annotation) for p in aio.parameters.values()
    ]
    assert str(sync.return_annotation) == sync_spelling(aio.return_annotation)
    assert inspect.getdoc(SYNC[name]) == inspect.getdoc(ASYNC[twin])
    # awaited, but for the streams (async iterators) and the constructor
    awaited = name not in STREAMS and name != "__init__"
    assert inspect.iscoroutinefunction(ASYNC[twin]) == awaited
    assert not inspect.iscoroutinefunction(SYNC[name])


# ----------------------------------------------------------------------------- scripted answers
URL = "http://curvegan.test"
FAST = RetryPolicy(retries=2, backoff=0.0)
NOW = "2024-05-01T12:00:00Z"
JOB = {"id": "job_a", "config": {}, "step": 0, "steps": 200, "progress": 0.0, "created_at": NOW}
COUNTS = {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}


def job(state: str, step: int = 0) -> dict[str, Any]:
    return {**JOB, "state": state, "step": step}


def sweep(state: str) -> dict[str, Any]:
    member = {"job_id": "job_a", "member_index": 0, "values": {"seed": 0}}
    return {
        "id": "sw_1",
        "state": state,
        "created_at": NOW,
        "best_by": "w1_a",
        "preset": "tutorial",
        "config": {},
        "member_count": 1,
        "counts": {**COUNTS, state: 1},
        "progress": 1.0 if state == "succeeded" else 0.0,
        "members": [{**member, "state": state, "step": 0, "steps": 200, "progress": 0.0}],
    }


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def metrics(step: int) -> bytes:
    return frame("metrics", {"step": step, "state": "running", "progress": step / 200}, step)


KEEPALIVE = b": keep-alive\n\n"


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body for either client: bytes are sent, a float is a pause (seconds), an
    exception is raised where it stands (a dropped connection, a read timeout)."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, float):
                time.sleep(part)
            elif isinstance(part, Exception):
                raise part
            else:
                yield part

    async def __aiter__(self) -> Any:
        for part in self.parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            elif isinstance(part, Exception):
                raise part
            else:
                yield part


def stream(*parts: Any) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Body(list(parts))
    )


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def not_found() -> httpx.Response:
    return answer(404, {"error": "not_found", "message": "no such thing", "field": None})


Script = Callable[[], list[Any]]  # a fresh list of answers (Response or exception) per client


def seen_as(request: httpx.Request) -> tuple[Any, ...]:
    names = ("last-event-id", "idempotency-key", "authorization", "content-type", "accept")
    headers = {n: request.headers[n] for n in names if request.headers.get(n, "*/*") != "*/*"}
    return (request.method, str(request.url), headers, request.content)


def transport(script: Script, sent: list[tuple[Any, ...]]) -> httpx.MockTransport:
    answers = script()

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(seen_as(request))
        if not answers:
            return not_found()
        next_answer = answers.pop(0)
        if isinstance(next_answer, Exception):
            raise next_answer
        return next_answer

    return httpx.MockTransport(handle)


def outcome(result: Any, error: BaseException | None) -> Any:
    if error is not None:
        return (type(error), str(error))
    return result


def run_sync(script: Script, name: str, /, *args: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
    sent: list[tuple[Any, ...]] = []
    http = httpx.Client(base_url=URL, transport=transport(script, sent))
    with http, Client(http=http, retry=FAST, api_key="key") as api:
        events: list[Event] = []
        try:
            result = getattr(api, name)(*args, **kwargs)
            if name in STREAMS:
                events.extend(result)
                result = events
        except Exception as exc:
            return ("raised", events, outcome(None, exc)), sent
    return ("returned", result), sent


def run_async(script: Script, name: str, /, *args: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
    async def go() -> tuple[Any, list[Any]]:
        sent: list[tuple[Any, ...]] = []
        http = httpx.AsyncClient(base_url=URL, transport=transport(script, sent))
        async with http, AsyncClient(http=http, retry=FAST, api_key="key") as api:
            events: list[Event] = []
            try:
                if name in STREAMS:
                    async for event in getattr(api, name)(*args, **kwargs):
                        events.append(event)
                    result: Any = events
                else:
                    result = await getattr(api, name)(*args, **kwargs)
            except Exception as exc:
                return ("raised", events, outcome(None, exc)), sent
        return ("returned", result), sent

    return asyncio.run(go())


def both(script: Script, name: str, /, *args: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
    """What ``name(*args, **kwargs)`` did on each client: the same, or the test fails."""
    sync = run_sync(script, name, *args, **kwargs)
    aio = run_async(script, name, *args, **kwargs)
    assert sync == aio
    return sync


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.type, e.id) for e in events]


def events_url(since_step: int = 0) -> str:
    return f"{URL}/v1/jobs/job_a/events?since_step={since_step}"


def resumed_from(sent: list[tuple[Any, ...]]) -> list[str | None]:
    return [headers.get("last-event-id") for _, _, headers, _ in sent]


# ----------------------------------------------------------------------------- event streams
def test_frames_and_keep_alives_up_to_the_final_state() -> None:
    def script() -> list[Any]:
        # a frame split across reads, a keep-alive comment, then the final state
        final = frame("state", job("succeeded", 200))
        return [stream(frame("state", job("running")), metrics(100)[:9], metrics(100)[9:],
                       KEEPALIVE, metrics(200), final[:20], final[20:])]  # fmt: skip

    done, sent = both(script, "iter_events", "job_a")
    assert done[0] == "returned"
    assert kinds(done[1]) == [
        ("state", None),
        ("metrics", "100"),
        ("metrics", "200"),
        ("state", None),
    ]
    assert done[1][-1].data["state"] == "succeeded"
    assert sent == [("GET", events_url(), {"authorization": "Bearer key"}, b"")]


def test_a_finished_jobs_stream_is_read_to_its_end() -> None:
    # The first frame of a finished job's stream is its final state; the rest follows it.
    def script() -> list[Any]:
        final = frame("state", job("succeeded", 200))
        return [stream(final, metrics(100), metrics(200), final)]

    done, sent = both(script, "iter_events", "job_a")
    assert kinds(done[1]) == [
        ("state", None),
        ("metrics", "100"),
        ("metrics", "200"),
        ("state", None),
    ]
    assert len(sent) == 1


def test_a_dropped_stream_resumes_with_last_event_id() -> None:
    def script() -> list[Any]:
        return [
            stream(frame("state", job("running")), metrics(100), KEEPALIVE,
                   httpx.RemoteProtocolError("peer closed connection")),
            # a server that shuts down ends the stream cleanly, before its last frame
            stream(frame("state", job("running", 100)), metrics(200)),
            stream(frame("state", job("running", 200)), metrics(300), frame("state", job("succeeded", 300))),
        ]  # fmt: skip

    done, sent = both(script, "iter_events", "job_a")
    assert done[0] == "returned"
    assert [e.id for e in done[1] if e.type == "metrics"] == ["100", "200", "300"]
    assert done[1][-1].data["state"] == "succeeded"
    assert [url for _, url, _, _ in sent] == [events_url()] * 3
    assert resumed_from(sent) == [None, "100", "200"]


def test_resuming_gives_up_after_the_retries_in_a_row() -> None:
    def script() -> list[Any]:
        return [
            stream(frame("state", job("running")), metrics(100), httpx.ReadError("reset")),
            httpx.ConnectError("refused"),
            answer(503, {"message": "draining"}, **{"Retry-After": "0"}),
        ]

    done, sent = both(script, "iter_events", "job_a")
    assert done[0] == "raised" and kinds(done[1]) == [("state", None), ("metrics", "100")]
    assert done[2] == (UnavailableError, "event stream of job_a was refused on resuming (503)")
    assert resumed_from(sent) == [None, "100", "100"]


def test_a_frame_starts_the_count_of_drops_again() -> None:
    def script() -> list[Any]:
        drop = httpx.RemoteProtocolError("peer closed connection")
        return [
            stream(frame("state", job("running")), metrics(100), drop),
            httpx.ConnectError("refused"),
            stream(frame("state", job("running", 100)), metrics(200), drop),
            httpx.ConnectError("refused"),
            stream(frame("state", job("succeeded", 200))),
        ]

    done, sent = both(script, "iter_events", "job_a")
    assert done[0] == "returned" and done[1][-1].data["state"] == "succeeded"
    assert resumed_from(sent) == [None, "100", "100", "200", "200"]


def test_a_stream_that_cannot_be_opened_is_not_retried() -> None:
    done, sent = both(lambda: [httpx.ConnectError("refused")], "iter_events", "job_a")
    assert done == ("raised", [], (UnavailableError, "event stream of job_a broke: refused"))
    assert len(sent) == 1


def test_a_silent_stream_is_unavailable_and_not_resumed() -> None:
    def script() -> list[Any]:
        return [stream(frame("state", job("running")), httpx.ReadTimeout("timed out"))]

    done, sent = both(script, "iter_events", "job_a", read_timeout=5.0)
    assert done == (
        "raised",
        done[1],
        (UnavailableError, "event stream of job_a went silent for 5.0s"),
    )
    assert kinds(done[1]) == [("state", None)] and len(sent) == 1


def test_keep_alives_do_not_hold_the_timeout_off() -> None:
    def script() -> list[Any]:
        return [stream(frame("state", job("queued")), *[0.1, KEEPALIVE] * 30)]

    t0 = time.monotonic()
    done, sent = both(script, "iter_events", "job_a", timeout=0.3)
    assert done[0] == "raised" and kinds(done[1]) == [("state", None)]
    assert done[2] == (TimeoutError, "no end to the event stream of job_a after 0.3s")
    assert len(sent) == 1 and time.monotonic() - t0 < 4.0  # both, not 3 s each


def test_a_silent_stream_past_the_timeout_is_a_timeout() -> None:
    def script() -> list[Any]:
        return [stream(frame("state", job("queued")), 0.5, httpx.ReadTimeout("timed out"))]

    done, _ = both(script, "iter_events", "job_a", timeout=0.2)
    assert done[2] == (TimeoutError, "no end to the event stream of job_a after 0.2s")


def test_an_unknown_stream_is_not_found() -> None:
    done, sent = both(lambda: [not_found()], "iter_sweep_events", "sw_1")
    assert done == ("raised", [], (NotFoundError, "404: no such thing"))
    assert sent == [("GET", f"{URL}/v1/sweeps/sw_1/events", {"authorization": "Bearer key"}, b"")]


# ----------------------------------------------------------------------------- waiting
def test_wait_follows_the_stream_to_the_final_state() -> None:
    def script() -> list[Any]:
        final = job("succeeded", 200)
        return [
            answer(200, job("running")),
            stream(frame("state", job("running")), metrics(100), KEEPALIVE, frame("state", final)),
            answer(200, final),
        ]

    done, sent = both(script, "wait", "job_a", timeout=30, poll_interval=30)
    assert done[0] == "returned" and isinstance(done[1], Job) and done[1].state == "succeeded"
    job_url = f"{URL}/v1/jobs/job_a"
    assert [url for _, url, _, _ in sent] == [job_url, events_url(), job_url]


def test_wait_polls_when_the_stream_is_unavailable() -> None:
    def script() -> list[Any]:
        return [
            answer(200, job("running")),
            httpx.ConnectError("no streams here"),
            answer(200, job("running")),
            answer(200, job("succeeded")),
        ]

    done, sent = both(script, "wait", "job_a", timeout=30, poll_interval=0.01)
    assert done[1].state == "succeeded"
    assert [url for _, url, _, _ in sent] == [f"{URL}/v1/jobs/job_a", events_url()] + [
        f"{URL}/v1/jobs/job_a"
    ] * 2


def test_wait_sweep_returns_the_final_frame() -> None:
    def script() -> list[Any]:
        return [
            stream(frame("sweep", sweep("running")), KEEPALIVE, frame("sweep", sweep("succeeded")))
        ]

    done, sent = both(script, "wait_sweep", "sw_1", timeout=30)
    assert isinstance(done[1], Sweep) and done[1].state == "succeeded"
    assert [url for _, url, _, _ in sent] == [f"{URL}/v1/sweeps/sw_1/events"]


# ----------------------------------------------------------------------------- requests
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "create_job": (({"steps": 10},), {"name": "n", "preset": "fast", "idempotency_key": "k1"}),
    "list_jobs": (("running", 5, 2), {"sweep_id": "sw_1"}),
    "get_job": (("job_a",), {}),
    "job_metrics": (("job_a", 100, 5), {}),
    "iter_events": (("job_a", 100), {}),
    "wait": (("job_a",), {"timeout": 5}),
    "cancel_job": (("job_a",), {}),
    "delete_job": (("job_a",), {}),
    "save_checkpoint": (("job_a",), {}),
    "sample_job": (("job_a", 2), {"seed": 3}),
    "job_figure": (("job_a", "svg"), {"n": 2, "seed": 1, "width": 300, "height": 200}),
    "create_sweep": (({"steps": 10},), {"vary": {"seed": [0, 1]}, "idempotency_key": "k2"}),
    "list_sweeps": ((3, 1), {}),
    "get_sweep": (("sw_1",), {}),
    "cancel_sweep": (("sw_1",), {}),
    "delete_sweep": (("sw_1",), {}),
    "iter_sweep_events": (("sw_1",), {}),
    "wait_sweep": (("sw_1",), {"timeout": 5}),
    "list_checkpoints": (("job_a", 5, 0), {}),
    "get_checkpoint": (("ck_1",), {}),
    "download_checkpoint": (("ck_1",), {}),
    "upload_checkpoint": ((b"safetensors bytes",), {}),
    "delete_checkpoint": (("ck_1",), {}),
    "sample": (("ck_1",), {"z": [[0.0] * 5]}),
    "checkpoint_figure": (("ck_1",), {}),
    "health": ((), {}),
    "ready": ((), {}),
}
ENDPOINTS = [name for name in SYNC if not name.startswith("_") and name != "close"]


def test_every_endpoint_method_is_in_the_table() -> None:
    assert sorted(CALLS) == sorted(ENDPOINTS)


@pytest.mark.parametrize("name", CALLS)
def test_the_same_requests_and_the_same_answer(name: str) -> None:
    args, kwargs = CALLS[name]
    done, sent = both(lambda: [not_found()], name, *args, **kwargs)
    if name == "health":
        assert done == ("returned", False)
    else:
        assert done[0] == "raised" and done[-1][0] is NotFoundError
    assert len(sent) == 1 and sent[0][2]["authorization"] == "Bearer key"


def test_the_same_retries() -> None:
    def busy_twice() -> list[Any]:
        busy = answer(503, {"message": "busy"}, **{"Retry-After": "0"})
        return [httpx.ConnectError("refused"), busy, answer(200, job("running"))]

    done, sent = both(busy_twice, "get_job", "job_a")
    assert done[0] == "returned" and done[1].state == "running" and len(sent) == 3
    # an unsafe call is not sent again once it may have reached the server
    done, sent = both(lambda: [httpx.ReadError("reset")], "cancel_job", "job_a")
    assert done[-1][0] is UnavailableError and len(sent) == 1
