"""A real cluster on this machine: API servers and `curvegan worker` nodes sharing one
PostgreSQL database, one RabbitMQ queue and one checkpoint directory, all fresh per module."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT, Server, wait_until
from tests.services import fresh_postgres_database, rabbitmq_url, unique_name

__all__ = ["LEASE_S", "Cluster", "WorkerNode", "running_cluster", "wait_until"]

# Short leases so that recovery tests take seconds; renewals come every second regardless.
LEASE_S = "3"


@dataclass
class WorkerNode:
    """One `curvegan worker` process group (Celery's main process and its pool)."""

    name: str
    env: dict[str, str]
    log_path: Path
    concurrency: int = 1
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.write_bytes(b"")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process writes it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "curvegan",
                "worker",
                "--node-name",
                self.name,
                "--concurrency",
                str(self.concurrency),
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: kill -9 takes the whole node
        )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited early:\n{self.log()}")
            return f"{self.name} ready." in self.log()

        wait_until(ready, timeout, f"worker {self.name} ready", self.log, interval=0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal_group(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        """The whole node dies at once, pool processes included, as a machine would."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.signal_group(signal.SIGCONT)  # a paused node could not stop
            self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()


@dataclass
class Cluster:
    apis: list[Server]
    nodes: list[WorkerNode]
    env: dict[str, str]
    storage_dir: Path

    def logs(self) -> str:
        parts = [f"--- api {s.port}\n{s.log()[-3000:]}" for s in self.apis]
        parts += [f"--- node {n.name}\n{n.log()[-3000:]}" for n in self.nodes]
        return "\n".join(parts)


@contextlib.contextmanager
def running_cluster(
    tmp: Path, *, apis: int = 2, nodes: int = 2, broker_url: str | None = None, **extra: str
) -> Iterator[Cluster]:
    with fresh_postgres_database() as db_url:
        storage_dir = tmp / "shared"
        storage_dir.mkdir()
        env = {
            "CURVEGAN_EXECUTOR": "celery",
            "CURVEGAN_BROKER_URL": broker_url or rabbitmq_url(),
            "CURVEGAN_QUEUE": unique_name("curvegan_test"),
            "CURVEGAN_DATABASE_URL": db_url,
            "CURVEGAN_STORAGE_URL": f"file://{storage_dir}",
            "CURVEGAN_LEASE_SECONDS": LEASE_S,
            "CURVEGAN_REPUBLISH_SECONDS": "2",
            "CURVEGAN_SWEEP_SPLIT": "2",
            "CURVEGAN_LOG_LEVEL": "warning",
            **{f"CURVEGAN_{k.upper()}": v for k, v in extra.items()},
        }
        servers: list[Server] = []
        workers: list[WorkerNode] = []
        try:
            for i in range(apis):
                data_dir = tmp / f"api{i}"
                data_dir.mkdir()
                server = Server(data_dir=data_dir, env=env)
                servers.append(server)
                server.start()
            # Celery's control queue is named after the node and held exclusively: the host
            # part is this cluster's own, so that two runs (or xdist workers) never share it.
            host = unique_name("test").replace("_", "-")
            for i in range(nodes):
                node = WorkerNode(f"n{i + 1}@{host}", env, tmp / f"node{i + 1}.log")
                workers.append(node)
                node.start()
            yield Cluster(servers, workers, env, storage_dir)
        finally:
            for node in workers:
                node.stop()
            for server in servers:
                server.stop()
            _delete_queue(env["CURVEGAN_BROKER_URL"], env["CURVEGAN_QUEUE"])


def _delete_queue(url: str, name: str) -> None:
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(url) as conn:
        conn.default_channel.queue_delete(name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c
