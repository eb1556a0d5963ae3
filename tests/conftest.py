"""The fixtures that run the real service, from the cheapest to the dearest:

- ``app_client`` / ``make_app_client(**settings)``: the app in this process (``create_app``
  and its lifespan, a tmp data dir) behind an httpx client through httpx.ASGITransport: for
  what needs no separate process (validation, 404s, headers, settings the API reads);
  ``workers=False`` skips the worker pool where nothing is trained;
- ``live_server`` / ``shared_client``: one real server (uvicorn in a subprocess on a free port,
  real SQLite) with the default settings, shared by the whole session (per xdist worker);
  ``server_with(**settings)`` is the same for one set of other settings (a service module's
  SERVER_ENV picks its ``module_server`` so). Tests on a shared server assert only on what
  they made (ids, names, counts before and after), never on an empty database;
- ``make_server`` / ``server`` / ``client``: a fresh server per test, only where the process
  is the point (restart, kill -9, faults, a log, an empty database on purpose).

The server itself, ``free_port``, ``wait_for_state``, ``assert_error`` and the tiny checkpoint
live in tests/helpers.py (the benchmarks use them too); they are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.store import Store
from tests.helpers import (
    FINAL,
    ROOT,
    Server,
    assert_error,
    free_port,
    settings_env,
    started_server,
    wait_for_state,
)

__all__ = [
    "FINAL",
    "ROOT",
    "Server",
    "assert_error",
    "free_port",
    "settings_env",
    "started_server",
    "wait_for_state",
]

# ----------------------------------------------------------------------------- markers

# Applied by place, so that `-m "not slow and not browser"` picks a quick run; the default
# run (and CI's) runs everything.
_MARKS_BY_PATH: list[tuple[str, tuple[str, ...]]] = [
    ("tests/service/cluster/", ("cluster", "slow")),
    ("tests/service/browser/", ("browser",)),
    ("tests/service/test_faults.py", ("faults", "slow")),
    ("tests/service/test_disk_full.py", ("faults",)),
    ("tests/service/test_restart.py", ("faults",)),
    ("tests/service/test_checkpoint_races.py", ("faults",)),
    ("tests/service/runners/test_local_pool.py", ("faults",)),
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        try:
            where = Path(str(item.path)).relative_to(root).as_posix()
        except ValueError:
            continue
        for prefix, marks in _MARKS_BY_PATH:
            if where.startswith(prefix):
                for mark in marks:
                    item.add_marker(mark)


# ----------------------------------------------------------------------------- in process


class _Chunks(httpx.AsyncByteStream):
    """A request body as the sync client made it, handed on chunk by chunk (a generator body
    reaches the app in as many ``http.request`` messages, as uvicorn delivers a chunked one)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _AppTransport(httpx.BaseTransport):
    """A sync transport onto httpx.ASGITransport, run on the event loop that runs the app's
    lifespan (in a thread of its own): the app's tasks and its requests share one loop."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.stream
        assert isinstance(body, Iterable), body

        async def send() -> tuple[int, httpx.Headers, bytes]:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, stream=_Chunks(body)
            )
            response = await self._asgi.handle_async_request(forwarded)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = asyncio.run_coroutine_threadsafe(send(), self._loop).result()
        headers = httpx.Headers([(k, v) for k, v in headers.multi_items()])
        return httpx.Response(status, headers=headers, content=content, request=request)


class AppClient(httpx.Client):
    """An httpx client on an app in this process; ``data_dir`` is the app's."""

    data_dir: Path


@dataclass
class InProcessApp:
    """An app running in this process, as a ``Server`` is one in a process of its own:
    ``data_dir`` and ``client(**kw)`` (httpx keywords, e.g. ``headers``)."""

    data_dir: Path
    transport: httpx.BaseTransport

    def client(self, **kw: Any) -> AppClient:
        client = AppClient(transport=self.transport, base_url="http://test", timeout=30.0, **kw)
        client.data_dir = self.data_dir
        return client


@contextlib.contextmanager
def in_process_app(
    data_dir: Path, *, workers: bool = True, **settings: Any
) -> Iterator[InProcessApp]:
    """The app of ``Settings(data_dir=data_dir, **settings)`` (one worker unless
    ``max_concurrent_jobs`` says otherwise) in this process, on an event loop of its own for
    the block; its clients go through httpx.ASGITransport. An error the app does not turn
    into a response comes back as a 500, as over HTTP. Responses are read whole, so event
    streams are for the real servers, as is what uvicorn does (the head's bound, connections).

    With ``workers`` its lifespan runs (store migrated, worker processes started and, at the
    end, stopped: seconds each). Without, the store is only migrated: for tests that train
    nothing (jobs they make stay queued), which then cost no worker process."""
    import torch

    from service.api.app import create_app
    from service.settings import Settings
    from service.store import Store

    settings.setdefault("max_concurrent_jobs", 1)
    config = Settings(data_dir=data_dir, **settings)
    app = create_app(config)
    threads = torch.get_num_threads()  # the lifespan sets this process's to 1
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="app-loop", daemon=True)
    thread.start()
    lifespan = app.router.lifespan_context(app)
    on_loop = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result()  # noqa: E731
    try:
        if workers:
            on_loop(lifespan.__aenter__())
        else:
            store = Store(config.db_url)
            try:
                store.migrate()
            finally:
                store.dispose()
        try:
            yield InProcessApp(data_dir, _AppTransport(app, loop))
        finally:
            if workers:
                on_loop(lifespan.__aexit__(None, None, None))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        torch.set_num_threads(threads)


@contextlib.contextmanager
def in_process_client(data_dir: Path, **settings: Any) -> Iterator[AppClient]:
    """A client on ``in_process_app(data_dir, **settings)``, for the block."""
    with in_process_app(data_dir, **settings) as app, app.client() as client:
        yield client


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[AppClient]:
    """The app with the default settings, in this process (see ``in_process_client``)."""
    with in_process_client(tmp_path / "inproc") as client:
        yield client


@pytest.fixture
def make_app_client(tmp_path: Path) -> Iterator[Callable[..., AppClient]]:
    """``make_app_client(**settings)``: the app of those settings in this process, a fresh
    data dir each; all are shut down at teardown."""
    made: list[int] = []
    with contextlib.ExitStack() as stack:

        def make(**settings: Any) -> AppClient:
            made.append(1)
            data_dir = tmp_path / f"inproc{len(made)}"
            return stack.enter_context(in_process_client(data_dir, **settings))

        yield make


def asgi_call(app: Any) -> Callable[..., httpx.Response]:
    """``call(method, url, **kw)`` on ``app`` through httpx.ASGITransport, without its lifespan:
    for requests refused before a handler needs the store or the workers."""

    async def call(method: str, url: str, **kw: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, url, **kw)

    return lambda method, url, **kw: asyncio.run(call(method, url, **kw))


# ----------------------------------------------------------------------------- shared servers


class ServerPool:
    """Real servers shared by the session: one per distinct set of settings, started when first
    asked for and stopped at the end of the session."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._servers: dict[tuple[tuple[str, str], ...], Server] = {}

    def get(self, env: dict[str, str] | None = None) -> Server:
        key = tuple(sorted((env or {}).items()))
        server = self._servers.get(key)
        if server is not None and (server.proc is None or server.proc.poll() is not None):
            # A test stopped it or it died: the next one gets a fresh server, said in its log.
            print(
                f"shared server {dict(key)} was down; starting a new one:\n{server.log()[-2000:]}"
            )
            server = None
        if server is None:
            data_dir = self._tmp.mktemp("shared-server") / "data"
            data_dir.mkdir()
            server = Server(data_dir=data_dir, env=dict(key), name=f"shared server {dict(key)}")
            server.start()
            self._servers[key] = server
        return server

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session")
def server_with(server_pool: ServerPool) -> Callable[..., Server]:
    """``server_with(**settings)``: the session's server for those CURVEGAN_* settings (as
    ``make_server`` takes them), started on first use. It is shared: assert only on what the
    test made, and leave no job running."""
    return lambda **settings: server_pool.get(settings_env(**settings))


@pytest.fixture(scope="session")
def live_server(server_pool: ServerPool) -> Server:
    """The session's server with the default settings."""
    return server_pool.get({})


@pytest.fixture
def shared_client(live_server: Server) -> Iterator[httpx.Client]:
    with live_server.client() as c:
        yield c


# ----------------------------------------------------------------------------- own servers


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts fresh servers with extra CURVEGAN_* settings; all are stopped at teardown. For
    tests where the process is the point; the others use ``live_server``, ``server_with``
    or ``make_app_client``."""
    servers: list[Server] = []

    def make(**settings: str) -> Server:
        data_dir = tmp_path / f"data{len(servers)}"
        data_dir.mkdir()
        server = Server(data_dir=data_dir, env=settings_env(**settings))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture
def wait_state() -> Callable[..., dict]:
    """``wait_state(client, job_id, {"succeeded"}, timeout=60)`` -> the Job once there."""
    return wait_for_state


# ----------------------------------------------------------------------------- databases


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite store in a temp dir, migrated (tests/service/store runs its cases on
    PostgreSQL too, with a ``store`` of its own)."""
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the whole test run, one per xdist worker (skipped
    without PostgreSQL)."""
    from tests.services import fresh_postgres_database

    with fresh_postgres_database() as url:
        yield url
