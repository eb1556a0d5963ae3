"""A plain ``pip install`` of the project (no extras) is the client alone: in a fresh venv
without torch (or numpy) it imports and drives the real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from curvegan import Client
from tests.conftest import Server

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from curvegan import Client
try:
    import numpy
except ImportError:
    numpy = None

with Client(sys.argv[1]) as api:
    job = api.create_job({"steps": 200, "log_every": 100, "seed": 1})
    job = api.wait(job.id, timeout=60)
    samples = api.sample(job.latest_checkpoint, n=3, seed=1)
    curves = samples.curves
    if numpy is None:
        assert isinstance(curves, list) and all(isinstance(row, list) for row in curves)
        shape = [len(curves), len(curves[0])]
    else:
        shape = list(curves.shape)
        curves = curves.tolist()
    print(json.dumps({
        "job": job.id, "state": job.state, "checkpoint": job.latest_checkpoint,
        "shape": shape, "curves": curves, "seed": samples.seed, "numpy": numpy is not None,
        "torch_loaded": "torch" in sys.modules,
    }))
"""


def base_python() -> str:
    """The interpreter the running venv was made from (a venv made from a venv would still see
    nothing of it, but the base is what a user has)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def run(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    # The test's own venv must not leak into the fresh one.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_plain_install_has_no_torch_and_drives_the_server(server: Server, tmp_path: Path) -> None:
    # Build from a copy of the repository root, so the build's own build/ and *.egg-info land
    # in tmp_path rather than in the working tree (where a stale build/lib could leak into the
    # next wheel).
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "checkpoints"
        ),
    )
    venv = tmp_path / "venv"
    made = run(base_python(), "-m", "venv", venv, timeout=120)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    pip = run(py, "-m", "pip", "install", "--disable-pip-version-check", "-q", src, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr

    no_torch = run(py, "-c", "import torch", timeout=60)
    assert no_torch.returncode != 0
    assert "No module named 'torch'" in no_torch.stderr

    imported = run(py, "-c", "import curvegan, sys; print('torch' in sys.modules)", timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "False"
    cli = run(venv / "bin" / "curvegan", "--help", timeout=60)
    assert cli.returncode == 0 and "sample" in cli.stdout, cli.stderr

    script = tmp_path / "drive.py"
    script.write_text(SCRIPT)
    driven = run(py, script, server.url, timeout=120)
    assert driven.returncode == 0, driven.stdout + driven.stderr
    result = json.loads(driven.stdout.strip().splitlines()[-1])
    assert result["state"] == "succeeded" and result["checkpoint"]
    assert result["shape"] == [3, 15] and result["seed"] == 1
    assert result["torch_loaded"] is False

    # The same curves as this venv's client gets them (.npy when numpy is here, JSON there).
    with Client(server.url) as api:
        here = api.sample(result["checkpoint"], n=3, seed=1).curves
    np.testing.assert_array_equal(np.asarray(result["curves"], dtype=np.float32), here)
