"""Fixtures that run the real service: uvicorn in a subprocess on a free port, real SQLite."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One running service process; ``restart()`` keeps its data dir and port."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, **self.env, "CURVEGAN_DATA_DIR": str(self.data_dir)}
        env["CURVEGAN_HOST"], env["CURVEGAN_PORT"] = "127.0.0.1", str(self.port)
        self.log_path = self.data_dir.parent / f"server-{self.port}-{time.time_ns()}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child process writes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown handlers run, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kw)  # type: ignore[arg-type]


@contextlib.contextmanager
def started_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server with its own fresh data dir, for fixtures wider than one test."""
    data_dir = tmp_path_factory.mktemp(name) / "data"
    data_dir.mkdir()
    server = Server(data_dir=data_dir, env=env or {})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers with extra CURVEGAN_* settings; all are stopped at teardown."""
    servers: list[Server] = []

    def make(**settings: str) -> Server:
        data_dir = tmp_path / f"data{len(servers)}"
        data_dir.mkdir()
        server = Server(
            data_dir=data_dir, env={f"CURVEGAN_{k.upper()}": v for k, v in settings.items()}
        )
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


def wait_for_state(
    client: httpx.Client, job_id: str, states: set[str], timeout: float = 60.0
) -> dict:
    """Polls GET /v1/jobs/{id} until the job is in one of ``states``; returns the Job."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job.get("state") in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job}")


@pytest.fixture
def wait_state() -> Callable[..., dict]:
    """``wait_state(client, job_id, {"succeeded"}, timeout=60)`` -> the Job once there."""
    return wait_for_state


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the whole test run (skipped without PostgreSQL)."""
    from tests.services import fresh_postgres_database

    with fresh_postgres_database() as url:
        yield url
