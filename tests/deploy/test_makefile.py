"""The Makefile's install steps, read from `make -n` (a dry run: nothing is installed): `make
run` installs the service only, `make test` adds the dev tools, both ask PyTorch's CPU index
for torch, and the image installs what `make run` does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.deploy.test_container import CPU_INDEX

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(target: str, venv: Path) -> list[str]:
    """The pip install lines `make TARGET` would run on a fresh venv at ``venv``."""
    r = subprocess.run(
        ["make", "-n", "-C", str(ROOT), f"VENV={venv}", target],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line for line in r.stdout.splitlines() if "pip install" in line]


def extras(lines: list[str]) -> set[str]:
    return {m for line in lines for m in re.findall(r"-e '(\.\[[a-z,]+\])'", line)}


def test_run_installs_the_server_only_and_test_adds_the_dev_tools(tmp_path: Path) -> None:
    run, test = dry_run("run", tmp_path / "v"), dry_run("test", tmp_path / "v")
    assert extras(run) == {".[server]"}, run
    assert extras(test) == {".[server]", ".[server,dev]"}, test


def test_every_install_asks_the_cpu_index_for_torch_when_it_answers(tmp_path: Path) -> None:
    lines = dry_run("test", tmp_path / "v")
    assert lines
    for line in lines:
        # added only when reachable: the probe has a timeout, and pip's own retries stay
        assert f"--extra-index-url {CPU_INDEX}" in line and "timeout=5" in line, line
        assert "--retries 0" not in line, line


def test_the_image_installs_what_make_run_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"PIP_EXTRA_INDEX_URL={CPU_INDEX}" in dockerfile
    assert re.findall(r"pip install --no-cache-dir '(\.\[[a-z,]+\])'", dockerfile) == [".[server]"]
