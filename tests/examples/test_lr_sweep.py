"""The sweep example runs end to end against a real server."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT, Server


def test_lr_sweep_prints_a_table_and_samples_the_best(live_server: Server) -> None:
    """On the session's shared server: the example lists and samples only its own jobs."""
    server = live_server
    result = subprocess.run(
        [sys.executable, "examples/lr_sweep.py", "--url", server.url, "--steps", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr + server.log()
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith("job_")]
    assert len(rows) == 4 and all("succeeded" in r for r in rows), result.stdout
    best = next(i for i, line in enumerate(lines) if line.startswith("best: "))
    curves = [line.split() for line in lines[best + 1 :] if line.strip()]
    assert len(curves) == 5 and all(len(c) == 15 for c in curves)
