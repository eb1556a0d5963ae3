"""Retries through a real TCP proxy in front of the real server: a lost response to a create is
retried with the same Idempotency-Key and finds the first job; 503 with Retry-After is retried;
a server that keeps answering 429 ends in UnavailableError; an unsafe call is never resent."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from curvegan import ApiError, Client, JobList, RetryPolicy, UnavailableError
from tests.conftest import Server
from tests.curvegan.conftest import TINY, cancelling

# What the proxy does with one request: "forward" it; "drop": forward it, then close the
# client's connection without a response; or (status, headers): answer that itself.
Action = str | tuple[int, dict[str, str]]
Decide = Callable[[str, str, int], Action]  # (method, path, nth time this method+path) -> Action

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    action: str | int  # "forward", "drop" or the status the proxy answered itself
    upstream_status: int | None = None
    upstream_body: bytes = b""


class Proxy:
    """HTTP/1.1 on 127.0.0.1, one request per connection (every answer says Connection: close).

    Bounded: it serves at most ``max_requests`` connections, one at a time, and stops by
    itself after ``lifetime`` seconds or when the ``with`` block ends."""

    def __init__(
        self, upstream_port: int, decide: Decide, *, max_requests: int = 50, lifetime: float = 60
    ) -> None:
        self.upstream_port = upstream_port
        self.decide = decide
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.seen: list[Seen] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        deadline = time.monotonic() + self.lifetime
        served = 0
        try:
            while not self._stop.is_set() and served < self.max_requests:
                if time.monotonic() > deadline:
                    break
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                served += 1
                # OSError: the client went away; the test sees that from its side
                with conn, contextlib.suppress(OSError):
                    self._handle(conn)
        finally:
            self._sock.close()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk or len(buf) > 1 << 20:
                return
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk

        path = urlsplit(target).path
        nth = sum(1 for s in self.seen if (s.method, s.path) == (method, path))
        action = self.decide(method, path, nth)
        if isinstance(action, tuple):
            status, extra = action
            self.seen.append(Seen(method, path, headers, status))
            payload = json.dumps({"error": "busy", "message": "try later", "field": None})
            self._reply(conn, status, list(extra.items()), payload.encode())
            return

        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            forward = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
            upstream.request(method, target, body=body or None, headers=forward)
            resp = upstream.getresponse()
            data = resp.read()
            resp_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        finally:
            upstream.close()
        self.seen.append(Seen(method, path, headers, action, resp.status, data))
        if action == "drop":
            conn.shutdown(socket.SHUT_RDWR)  # the server did the work; the client hears nothing
            return
        self._reply(conn, resp.status, resp_headers, data)

    @staticmethod
    def _reply(
        conn: socket.socket, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        reason = http.client.responses.get(status, "Unknown")
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        conn.sendall("\r\n".join(lines).encode("latin-1") + body)


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return RetryPolicy(retries=2, backoff=0.01)


def test_lost_create_response_is_retried_with_the_same_key(
    server: Server, fast_retry: RetryPolicy
) -> None:
    def drop_first_create(method: str, path: str, nth: int) -> Action:
        return "drop" if (method, path, nth) == ("POST", "/v1/jobs", 0) else "forward"

    with Proxy(server.port, drop_first_create) as proxy, Client(proxy.url, retry=fast_retry) as api:
        job = api.create_job(TINY)

    creates = [s for s in proxy.seen if (s.method, s.path) == ("POST", "/v1/jobs")]
    assert [s.action for s in creates] == ["drop", "forward"]
    # the first try did reach the server and create the job; its answer was what got lost
    assert creates[0].upstream_status == 202
    assert json.loads(creates[0].upstream_body)["id"] == job.id
    keys = [s.headers.get("idempotency-key") for s in creates]
    assert keys[0] and keys[0] == keys[1]

    with server.client() as raw:
        listed = raw.get("/v1/jobs").json()
    assert listed["total"] == 1
    assert [j["id"] for j in listed["items"]] == [job.id]
    assert job.config["seed"] == TINY["seed"]


def test_503_with_retry_after_zero_is_retried_at_once(shared_server: Server) -> None:
    def busy_once(method: str, path: str, nth: int) -> Action:
        return (503, {"Retry-After": "0"}) if (method, nth) == ("GET", 0) else "forward"

    # A 5 s backoff that Retry-After: 0 must override.
    with (
        Proxy(shared_server.port, busy_once) as proxy,
        Client(proxy.url, retry=RetryPolicy(retries=2, backoff=5.0)) as api,
    ):
        t0 = time.monotonic()
        jobs = api.list_jobs()
        elapsed = time.monotonic() - t0
    assert isinstance(jobs, JobList) and jobs.total == len(jobs.items)
    assert [(s.method, s.path, s.action) for s in proxy.seen] == [
        ("GET", "/v1/jobs", 503),
        ("GET", "/v1/jobs", "forward"),
    ]
    assert elapsed < 2.5


def test_429_on_every_request_ends_unavailable(
    shared_server: Server, fast_retry: RetryPolicy
) -> None:
    with (
        Proxy(shared_server.port, lambda *_: (429, {})) as proxy,
        Client(proxy.url, retry=fast_retry) as api,
        pytest.raises(UnavailableError) as info,
    ):
        api.get_job("job_x")
    assert not isinstance(info.value, ApiError)
    assert "429" in str(info.value)
    assert [(s.path, s.action) for s in proxy.seen] == [("/v1/jobs/job_x", 429)] * 3


def test_lost_response_of_an_unsafe_call_is_not_resent(
    shared_server: Server, fast_retry: RetryPolicy
) -> None:
    server = shared_server

    def drop_cancels(method: str, path: str, nth: int) -> Action:
        return "drop" if path.endswith("/cancel") else "forward"

    with Client(server.url) as direct, cancelling(direct) as job:
        with (
            Proxy(server.port, drop_cancels) as proxy,
            Client(proxy.url, retry=fast_retry) as api,
            pytest.raises(UnavailableError),
        ):
            api.cancel_job(job.id)
        cancels = [s for s in proxy.seen if s.path.endswith("/cancel")]
        assert [(s.method, s.action) for s in cancels] == [("POST", "drop")]
        assert cancels[0].upstream_status == 202
        # the one cancel that was sent did its work
        assert direct.wait(job.id, timeout=30).state == "cancelled"


def test_429_to_an_unsafe_call_is_unavailable_and_not_resent(
    shared_server: Server, fast_retry: RetryPolicy
) -> None:
    def busy_cancels(method: str, path: str, nth: int) -> Action:
        return (429, {"Retry-After": "0"}) if path.endswith("/cancel") else "forward"

    with (
        Proxy(shared_server.port, busy_cancels) as proxy,
        Client(proxy.url, retry=fast_retry) as api,
        pytest.raises(UnavailableError) as info,
    ):
        api.cancel_job("job_x")
    # Busy is "try later", not "your request is wrong": no ApiError, said once.
    assert not isinstance(info.value, ApiError) and "429" in str(info.value)
    assert [(s.method, s.action) for s in proxy.seen] == [("POST", 429)]
