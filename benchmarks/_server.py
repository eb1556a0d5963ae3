"""The service in a process of its own, for the benchmarks: the tests' ``Server``
(tests/helpers.py), the one way this repository starts a server.

`make bench` runs ``python benchmarks/x.py`` from the root, which puts benchmarks/ (not the
root) on sys.path: the root is added here, so that ``tests.helpers`` imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import Server, free_port, settings_env  # noqa: E402

__all__ = ["ROOT", "Server", "free_port", "settings_env", "start_server"]


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
