"""What the fault tests and scripts/faults.py share: a small real filesystem that can be filled
(tmpfs), and the invariants that must hold after any crash, full disk or race."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import poll

FINAL = {"succeeded", "failed", "cancelled"}


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only): a disk that really fills up.
    Skipped where it cannot be mounted, failed where services are required (CI)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = f"cannot mount a tmpfs (needs root): {exc}"
        if os.environ.get("CURVEGAN_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield path
    finally:
        # Lazy: a process that still holds a file there must not keep the mount alive.
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(directory: Path, name: str = "filler") -> list[Path]:
    """Fills the filesystem of ``directory`` to the last byte; returns the filler files (named
    ``name``-0, -1, -2: a second fill under another name takes what was freed since)."""
    fillers = []
    for i, chunk in enumerate((1 << 16, 512, 1)):
        path = directory / f"{name}-{i}"
        fillers.append(path)
        with contextlib.suppress(OSError), open(path, "wb", buffering=0) as fh:
            block = b"\0" * chunk
            while True:
                fh.write(block)
    return fillers


def free(fillers: list[Path]) -> None:
    for path in fillers:
        path.unlink(missing_ok=True)


def all_items(client: httpx.Client, path: str) -> list[dict]:
    """Every item of a paged listing (/v1/jobs, /v1/checkpoints)."""
    items: list[dict] = []
    while True:
        page = client.get(path, params={"limit": 1000, "offset": len(items)})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        if len(items) >= body["total"] or not body["items"]:
            return items


def all_checkpoints(client: httpx.Client) -> list[dict]:
    return all_items(client, "/v1/checkpoints")


def all_jobs(client: httpx.Client) -> list[dict]:
    return all_items(client, "/v1/jobs")


def wait_all_final(client: httpx.Client, timeout: float, log: str = "") -> list[dict]:
    return poll(
        lambda: all_jobs(client),
        lambda jobs: all(j["state"] in FINAL for j in jobs),
        timeout,
        "every job final",
        lambda: log[-3000:],
        interval=0.2,
    )


def files_of(files_dir: Path) -> tuple[set[str], list[str]]:
    """(checkpoint ids with a file, names of other files such as writers' temporary files)."""
    ids, others = set(), []
    for name in os.listdir(files_dir) if files_dir.is_dir() else []:
        if name.endswith(".safetensors") and not name.startswith("."):
            ids.add(name.removesuffix(".safetensors"))
        else:
            others.append(name)
    return ids, others


def check_files_match_records(
    client: httpx.Client, files_dir: Path, timeout: float = 10.0
) -> list[dict]:
    """Every record has its whole file (size and sha256 as recorded) and every file its record,
    with no writer's temporary file left: waits up to ``timeout`` for the janitor (the server
    must run with a short CURVEGAN_STALE_FILE_SECONDS) to remove leftovers of killed writers."""

    def look() -> tuple[list[dict], set[str], list[str]]:
        records = all_checkpoints(client)
        ids, others = files_of(files_dir)
        missing = {r["id"] for r in records} - ids
        assert not missing, f"records without their file: {sorted(missing)}"
        return records, ids, others

    def settled(seen: tuple[list[dict], set[str], list[str]]) -> bool:
        records, ids, others = seen
        return ids == {r["id"] for r in records} and not others

    records, _, _ = poll(
        look, settled, timeout, "no file without a record (files, other files)", interval=0.2
    )
    for ck in records:
        data = (files_dir / f"{ck['id']}.safetensors").read_bytes()
        assert len(data) == ck["size_bytes"], (ck, len(data))
        assert hashlib.sha256(data).hexdigest() == ck["sha256"], f"{ck['id']} is not whole"
    return records


def assert_no_server_paths(text: str, *paths: Path) -> None:
    for path in paths:
        assert str(path) not in text, f"a server path ({path}) in an answer: {text[:500]}"
