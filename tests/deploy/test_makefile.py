"""The Makefile's install steps, read from `make -n` (a dry run: nothing is installed): `make
run` installs the service only, `make test` adds the dev tools, both ask PyTorch's CPU index
for torch, and the image installs what `make run` does. `make test` alone first sees to Debian's
chromium for the browser tests (scripts/ensure_chromium.sh, run here against fake tools)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.test_container import CPU_INDEX
from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make_commands(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run on a fresh venv at ``venv``."""
    r = subprocess.run(
        ["make", "-n", "-C", str(ROOT), f"VENV={venv}", target],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return r.stdout.splitlines()


def dry_run(target: str, venv: Path) -> list[str]:
    """The pip install lines of ``make_commands``."""
    return [line for line in make_commands(target, venv) if "pip install" in line]


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


def test_only_make_test_sees_to_chromium_for_the_browser_tests(tmp_path: Path) -> None:
    step = "sh scripts/ensure_chromium.sh"
    test = make_commands("test", tmp_path / "v")
    assert step in test, test
    assert test.index(step) < next(i for i, c in enumerate(test) if "-m pytest" in c), test
    assert step not in make_commands("run", tmp_path / "v")
    # the image installs the server extra only: no playwright, no chromium
    assert "chromium" not in (ROOT / "Dockerfile").read_text()


def ensure_chromium(tmp_path: Path, *, uid: int, tools: dict[str, str]) -> tuple[str, list[str]]:
    """Runs scripts/ensure_chromium.sh with a PATH of fakes only: `id -u` answers ``uid``,
    ``tools`` maps other names to their shell body (`apt-get` logs its calls). Returns
    stderr and the logged apt-get calls (DEBIAN_FRONTEND, then the arguments)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    for name, body in {"id": f"echo {uid}", **tools}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    r = subprocess.run(
        ["/bin/sh", str(ROOT / "scripts" / "ensure_chromium.sh")],
        env={"PATH": str(bin_dir), "APT_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr  # never fails the build: the tests say why
    return r.stderr, log.read_text().splitlines() if log.exists() else []


APT = 'echo "$DEBIAN_FRONTEND $*" >> "$APT_LOG"'


def test_chromium_is_installed_with_apt_when_missing_and_root(tmp_path: Path) -> None:
    _, calls = ensure_chromium(tmp_path, uid=0, tools={"apt-get": APT})
    assert len(calls) == 2, calls
    assert calls[0].startswith("noninteractive ") and calls[0].endswith(" update"), calls
    assert calls[1].startswith("noninteractive ") and " install -y " in calls[1], calls
    assert "chromium" in calls[1].split(), calls


@pytest.mark.parametrize(
    ("uid", "tools", "note"),
    [
        (0, {"apt-get": APT, "chromium": "true"}, None),  # already there
        (1000, {"apt-get": APT}, "not root"),
        (0, {}, "apt-get"),  # no apt-get
        (0, {"apt-get": APT + "; exit 100"}, "could not install"),
    ],
    ids=["present", "not-root", "no-apt", "apt-fails"],
)
def test_otherwise_one_note_and_make_test_goes_on(
    tmp_path: Path, uid: int, tools: dict[str, str], note: str | None
) -> None:
    stderr, calls = ensure_chromium(tmp_path, uid=uid, tools=tools)
    if note is None:
        assert stderr == "" and calls == [], (stderr, calls)
    else:
        assert note in stderr.splitlines()[-1], stderr
        assert stderr.count("note:") == 1, stderr
    if uid != 0 or "apt-get" not in tools:
        assert calls == [], calls
