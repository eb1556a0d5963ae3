"""The service in a process of its own, for the benchmarks: the tests' ``Server``
(tests/helpers.py), the one way this repository starts a server.

`make bench` runs ``python benchmarks/x.py`` from the root, which puts benchmarks/ (not the
root) on sys.path: the root is added here, so that ``tests.helpers`` imports.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import Server, free_port, settings_env  # noqa: E402

__all__ = [
    "ROOT",
    "Server",
    "free_port",
    "run_interruptible",
    "run_with_servers",
    "settings_env",
    "start_server",
]


def start_server(data_dir: str, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m service`` on ``data_dir`` with CURVEGAN_<KEY> = value for each setting (its
    log in ``data_dir``/server.log); returns the process and its URL once /readyz answers."""
    server = Server(
        data_dir=Path(data_dir),
        env={"CURVEGAN_LOG_LEVEL": "warning", **settings_env(**settings)},
        log_path=Path(data_dir) / "server.log",
        ready_timeout=60,
    )
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(f"server did not start: {exc}") from None
    assert server.proc is not None
    return server.proc, server.url


def run_interruptible(
    body: Callable[[], object],
    logs: Callable[[], Iterable[tuple[str, str]]],
    cleanup: Callable[[], object],
) -> None:
    """Runs ``body`` with SIGTERM taken as Ctrl-C: an interruption exits 130, any other failure
    prints the tail of each ``(name, log)`` first; ``cleanup`` runs whatever happened."""

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    try:
        body()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        raise SystemExit(130) from None
    except BaseException:
        for name, log in logs():
            print(f"\n--- {name} log, last 3000 characters:\n{log[-3000:]}", file=sys.stderr)
        raise
    finally:
        # No second Ctrl-C may cut the cleanup short: it would leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup()


def run_with_servers(prefix: str, body: Callable[[Path, list[Server]], object]) -> None:
    """``body(tmp_dir, servers)`` in a fresh temp dir, interruptible (``run_interruptible``):
    the servers it appends are stopped however it ends, their logs printed if it fails."""
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_dir:
        run_interruptible(
            lambda: body(Path(tmp_dir), servers),
            lambda: [("server", s.log()) for s in servers],
            lambda: [s.stop() for s in servers],
        )
