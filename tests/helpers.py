"""What the tests and the benchmarks share: the one way to start the service in a process of its
own (``Server``), a free port, polling for a condition, the JSON error assertion and a tiny
trained checkpoint.

No pytest at import time: the benchmarks (``python benchmarks/x.py``) import this module too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    import pytest

    from gan_engine import Checkpoint

ROOT = Path(__file__).resolve().parents[1]
FINAL = frozenset({"succeeded", "failed", "cancelled"})
# A few seconds of training at batch 256 with checkpoints every 500 steps: a kill, a stop or
# a restart lands mid-run, between two checkpoints.
LONG_RUN = {
    "steps": 3000,
    "checkpoint_every": 500,
    "log_every": 100,
    "batch_size": 256,
}
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_http_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body (by its Content-Length, none without one) of the next HTTP/1.1
    response read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    return status, rest[:length]


# ----------------------------------------------------------------------------- polling


def poll(
    fetch: Callable[[], T],
    until: Callable[[T], object],
    timeout: float,
    what: str,
    logs: Callable[[], str] | None = None,
    *,
    interval: float = 0.05,
) -> T:
    """Calls ``fetch`` until ``until`` holds for what it returned (then returned) or ``timeout``
    passes: an AssertionError naming ``what`` and the last value, with ``logs()`` when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            tail = f"\n{logs()}" if logs is not None else ""
            raise AssertionError(f"{what} not seen within {timeout}s (last: {value!r}){tail}")
        time.sleep(interval)


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    logs: Callable[[], str] | None = None,
    *,
    interval: float = 0.05,
) -> T:
    """Calls ``check`` until it returns something truthy, which is returned (see ``poll``)."""
    return poll(check, bool, timeout, what, interval=interval, logs=logs)


def wait_for_state(
    client: httpx.Client, job_id: str, states: Iterable[str], timeout: float = 60.0
) -> dict:
    """Polls GET /v1/jobs/{id} until the job is in one of ``states``; returns the Job."""
    wanted = set(states)
    return poll(
        lambda: client.get(f"/v1/jobs/{job_id}").json(),
        lambda job: job.get("state") in wanted,
        timeout,
        f"job {job_id} in {sorted(wanted)}",
        interval=0.1,
    )


# ----------------------------------------------------------------------------- errors

_ANY = object()
ERROR_KEYS = {"error", "message", "field"}


def assert_error(
    r: httpx.Response,
    status: int,
    code: str | None = None,
    *,
    field: Any = _ANY,
    message_has: str | Iterable[str] = (),
) -> dict:
    """An error response: ``status``, a JSON body of exactly {error, message, field} with a
    non-empty code and message; the code ``code``, the field ``field`` (None included) and a
    message holding each of ``message_has``, where given. Returns the body."""
    try:
        where = f"{r.request.method} {r.request.url}"
    except RuntimeError:  # a response made without a request
        where = "response"
    assert r.status_code == status, (
        f"{where}: expected {status}, got {r.status_code} {r.text[:500]}"
    )
    assert r.headers.get("content-type", "").startswith("application/json"), (
        f"error is not JSON: {r.headers.get('content-type')} {r.text[:300]}"
    )
    body = r.json()
    assert isinstance(body, dict), body
    assert set(body) == ERROR_KEYS, f"error body is not {{error, message, field}}: {body}"
    assert isinstance(body["error"], str) and body["error"], f"no error code: {body}"
    assert isinstance(body["message"], str) and body["message"].strip(), f"no message: {body}"
    if code is not None:
        assert body["error"] == code, f"error code {body['error']!r} != {code!r}: {body}"
    if field is not _ANY:
        assert body["field"] == field, f"field {body['field']!r} != {field!r}: {body}"
    for part in [message_has] if isinstance(message_has, str) else message_has:
        assert part in body["message"], f"{part!r} not in the message: {body}"
    return body


# ----------------------------------------------------------------------------- checkpoints


@functools.cache
def _tiny_checkpoint_bytes(items: tuple[tuple[str, Any], ...]) -> bytes:
    from gan_engine import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(**dict(items)))
    trainer.run()
    return trainer.checkpoint().to_bytes()


def tiny_checkpoint(
    seed: int = 1, steps: int = 50, log_every: int = 25, **config: Any
) -> Checkpoint:
    """A checkpoint of a short real training run (``TrainConfig(seed, steps, log_every,
    **config)``), trained once per distinct config in this process; each call returns a
    fresh copy, so a test may change its tensors."""
    from gan_engine import checkpoint_from_bytes

    items = tuple(sorted({"seed": seed, "steps": steps, "log_every": log_every, **config}.items()))
    return checkpoint_from_bytes(_tiny_checkpoint_bytes(items))


def tiny_checkpoint_bytes(
    seed: int = 1, steps: int = 50, log_every: int = 25, **config: Any
) -> bytes:
    """``tiny_checkpoint(...)`` as the bytes of its file."""
    items = tuple(sorted({"seed": seed, "steps": steps, "log_every": log_every, **config}.items()))
    return _tiny_checkpoint_bytes(items)


# ----------------------------------------------------------------------------- the server


@dataclass
class Server:
    """The service (``python -m service``) in a process of its own on ``port``, its data in
    ``data_dir``, with ``env`` on top of this process's environment (without its CURVEGAN_*
    variables where ``clean_env``). ``restart()`` keeps the data dir and the port.

    Its output goes to ``log_path`` (appended) or, when that is None, to a new file beside
    the data dir at each start, so that ``log()`` is this start's. With ``own_group`` it runs
    in a process group of its own (Ctrl-C in a terminal does not reach it) and ``stop()``
    ends whatever is left of the group too."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    name: str = "server"
    log_path: Path | None = None
    clean_env: bool = False
    own_group: bool = False
    ready_timeout: float = 60.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_file: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None) -> None:
        timeout = self.ready_timeout if timeout is None else timeout
        base = os.environ.items()
        env = {k: v for k, v in base if not (self.clean_env and k.startswith("CURVEGAN_"))}
        env.update(self.env)
        env.update(
            CURVEGAN_DATA_DIR=str(self.data_dir),
            CURVEGAN_HOST="127.0.0.1",
            CURVEGAN_PORT=str(self.port),
        )
        if self.log_path is not None:
            self._log_file = self.log_path
        else:
            self._log_file = self.data_dir.parent / f"server-{self.port}-{time.time_ns()}.log"
        with open(self._log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
            return False

        try:
            wait_until(ready, timeout, f"{self.name} ready", interval=0.1)
        except AssertionError:
            self.stop()
            raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()}") from None

    def log(self) -> str:
        path = self._log_file
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited (status {self.proc and self.proc.poll()})")

    def kill9(self) -> None:
        """SIGKILL to the server process alone: no shutdown handlers run, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; with ``own_group``, SIGKILL to whatever
        is left of the group afterwards."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.own_group:
                    os.killpg(self.proc.pid, signal.SIGCONT)  # a paused server could not stop
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.own_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kw)


def settings_env(**settings: str) -> dict[str, str]:
    """CURVEGAN_<KEY> = value for each keyword: ``settings_env(api_key="k")``."""
    return {f"CURVEGAN_{k.upper()}": v for k, v in settings.items()}


@contextlib.contextmanager
def started_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server with its own fresh data dir, for fixtures wider than one test."""
    data_dir = tmp_path_factory.mktemp(name) / "data"
    data_dir.mkdir()
    server = Server(data_dir=data_dir, env=dict(env or {}))
    server.start()
    try:
        yield server
    finally:
        server.stop()
