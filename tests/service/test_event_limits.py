"""CURVEGAN_MAX_EVENT_STREAMS over real HTTP: a server holds at most that many event streams
(jobs' and sweeps' together), answers 429 beyond, and a stream its client closes, or that
ends with its job, frees its slot."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx

from tests.helpers import Server, poll

LIMIT = 2
LONG_JOB = {"steps": 10_000_000, "log_every": 1000, "checkpoint_every": 0}


def open_streams(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("curvegan_event_streams "))
    return int(float(line.split()[1]))


def wait_open_streams(server: Server, n: int, timeout: float = 15.0) -> None:
    poll(lambda: open_streams(server), lambda now: now == n, timeout, f"{n} streams open")


@contextlib.contextmanager
def stream(client: httpx.Client, path: str) -> Iterator[httpx.Response]:
    """The response once its headers came: the server has taken the stream's slot by then."""
    with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as r:
        if r.status_code != 200:
            r.read()
        yield r


def test_event_streams_are_bounded_and_free_their_slots(
    make_server: Callable[..., Server],
) -> None:
    # One worker, busy with the long job: the sweep's member stays queued, its stream open.
    server = make_server(max_event_streams=str(LIMIT), max_concurrent_jobs="1", worker_nice="19")
    # Each stream its own connection; closing one closes its connection, as a client's would.
    with server.client() as client, contextlib.ExitStack() as held:
        job = client.post("/v1/jobs", json={"config": LONG_JOB}).json()["id"]
        sweep = client.post(
            "/v1/sweeps", json={"config": {"steps": 100}, "vary": {"seed": [1]}}
        ).json()["id"]
        try:
            # A missing job is 404 and takes no slot.
            for _ in range(LIMIT + 1):
                with stream(client, "/v1/jobs/job-missing/events") as r:
                    assert r.status_code == 404, r.text
            first = held.enter_context(stream(client, f"/v1/jobs/{job}/events"))
            assert first.status_code == 200, first.text
            second = held.enter_context(stream(client, f"/v1/sweeps/{sweep}/events"))
            assert second.status_code == 200, second.text
            assert open_streams(server) == LIMIT

            # The limit+1-th stream, of a job or of a sweep, is refused.
            for path in (f"/v1/jobs/{job}/events", f"/v1/sweeps/{sweep}/events"):
                with stream(client, path) as r:
                    assert r.status_code == 429, r.text
                    assert int(r.headers["Retry-After"]) > 0, r.headers
                    body = r.json()
                    assert body["error"] == "too_many_streams", body
                    assert f"CURVEGAN_MAX_EVENT_STREAMS={LIMIT}" in body["message"], body
            assert open_streams(server) == LIMIT

            # A stream its client closes gives its slot back: a new one is accepted.
            first.close()
            wait_open_streams(server, LIMIT - 1)
            third = held.enter_context(stream(client, f"/v1/jobs/{job}/events"))
            assert third.status_code == 200, third.text
            with stream(client, f"/v1/jobs/{job}/events") as r:
                assert r.status_code == 429, r.text

            # Streams that end with their job or sweep give theirs back too: none is left.
            assert client.post(f"/v1/jobs/{job}/cancel").status_code == 202
            assert client.post(f"/v1/sweeps/{sweep}/cancel").status_code == 202
            third.read()  # to the final state frame, after which the server ends it
            second.read()
            wait_open_streams(server, 0)
            for _ in range(LIMIT + 1):  # a final job's stream ends at once, every time
                with stream(client, f"/v1/jobs/{job}/events") as r:
                    assert r.status_code == 200, r.text
                    r.read()
            wait_open_streams(server, 0)
        finally:
            client.post(f"/v1/jobs/{job}/cancel")
            client.post(f"/v1/sweeps/{sweep}/cancel")
