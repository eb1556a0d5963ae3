"""One service process on a free port, for the benchmarks that need a plain server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: str, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m service`` on ``data_dir`` with CURVEGAN_<KEY> = value for each setting;
    returns the process and its URL once /readyz answers."""
    port = free_port()
    env = {
        **os.environ,
        "CURVEGAN_DATA_DIR": data_dir,
        "CURVEGAN_PORT": str(port),
        "CURVEGAN_LOG_LEVEL": "warning",
        **{f"CURVEGAN_{k.upper()}": v for k, v in settings.items()},
    }
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")
