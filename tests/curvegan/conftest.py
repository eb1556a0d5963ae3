"""Shared by the client tests: one real service for the whole package, and an httpx client that
records every request it sends (to prove what the curvegan client did, or did not, send)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from curvegan import Client, CurveganError, Job
from tests.conftest import Server, started_server

# Tiny jobs finish in a few seconds; LONG jobs are never run to the end: each test that starts
# one cancels it (``cancelling``), so it never holds a worker slot past its test.
TINY = {"steps": 200, "log_every": 100, "seed": 7}
LONG = {"steps": 100_000, "log_every": 100}


@pytest.fixture(scope="package")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real service (uvicorn on a free port, real SQLite) shared by these test modules:
    each test makes its own jobs and asserts only on those. Tests that need an empty or
    specially configured server use ``server`` / ``make_server`` instead."""
    with started_server(tmp_path_factory, "curvegan-client") as server:
        yield server


@pytest.fixture
def api(shared_server: Server) -> Iterator[Client]:
    """A client of the shared service, closed after the test."""
    with Client(shared_server.url) as c:
        yield c


def recording_http(url: str) -> tuple[httpx.Client, list[tuple[str, str]]]:
    """An httpx.Client whose request hook appends (method, path) for every request sent."""
    seen: list[tuple[str, str]] = []

    def record(request: httpx.Request) -> None:
        seen.append((request.method, request.url.path))

    http = httpx.Client(base_url=url, timeout=30.0, event_hooks={"request": [record]})
    return http, seen


@contextlib.contextmanager
def cancelling(api: Client, config: dict | None = None) -> Iterator[Job]:
    """Starts a LONG job and, whatever the test did, cancels it and waits until it stopped."""
    job = api.create_job(config or LONG)
    try:
        yield job
    finally:
        with contextlib.suppress(CurveganError):
            api.cancel_job(job.id)
        with contextlib.suppress(CurveganError):
            api.wait(job.id, timeout=30, poll_interval=0.2, raise_on_failure=False)
