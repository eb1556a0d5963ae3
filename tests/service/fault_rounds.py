"""Random fault rounds against real servers on one data dir, for tests/service/test_faults.py
(a round of each kind) and scripts/faults.py (many): each round starts jobs and strikes at a
random moment while they train: kill -9 of the server (while jobs save checkpoints every few
steps and checkpoints are being uploaded), kill -9 of one worker process, a second server on
the same data dir and one of the two killed, or the disk filled to the last byte for a
while. Then it checks that nothing was lost or half-written."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import Server, wait_until
from tests.service.faults import (
    FINAL,
    all_jobs,
    assert_no_server_paths,
    check_files_match_records,
    files_of,
    fill,
    free,
    wait_all_final,
)

KINDS = ("kill_server", "kill_worker", "second_server", "disk_full")
KEEP = 2
# Short leases so a killed server's jobs come back within seconds; losses are not limited, so
# that a job that fails shows a bug, not bad luck; leftovers are swept a second after.
ENV = {
    "CURVEGAN_MAX_CONCURRENT_JOBS": "2",
    "CURVEGAN_LEASE_SECONDS": "2",
    "CURVEGAN_MAX_WORKER_LOSSES": "100",
    "CURVEGAN_STALE_FILE_SECONDS": "1",
    # Few kept: each save prunes older checkpoints, so faults land in pruning too (a record
    # deleted, its file not yet: the janitor's to remove).
    "CURVEGAN_KEEP_CHECKPOINTS": str(KEEP),
}
OCTET = {"content-type": "application/octet-stream"}


@dataclass
class Rig:
    """Servers on one data dir (on a tmpfs where ``disk_full`` is among the kinds)."""

    data_dir: Path
    upload: bytes  # a valid checkpoint file to upload
    rng: random.Random
    servers: list[Server] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)  # cancels answered 202

    @property
    def primary(self) -> Server:
        return self.servers[0]

    def start(self) -> Server:
        server = Server(data_dir=self.data_dir, env=dict(ENV))
        server.start(timeout=60)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()

    def client(self) -> httpx.Client:
        return self.primary.client()


def _cancel(rig: Rig, job_id: str) -> None:
    """Cancels until the answer is known: 202 (then it must end cancelled) or 409 (final)."""
    for _ in range(100):
        try:
            with rig.client() as c:
                r = c.post(f"/v1/jobs/{job_id}/cancel")
        except httpx.TransportError:  # the server is being killed or restarted
            time.sleep(0.2)
            continue
        if r.status_code == 202:
            rig.cancelled.add(job_id)
            return
        if r.status_code == 409:
            return
        assert r.status_code == 507, f"cancel: {r.status_code} {r.text}"
        time.sleep(0.2)  # the disk is full: not recorded, and said so
    raise AssertionError(f"cancel of {job_id} never answered")


def _uploads(rig: Rig, stop: threading.Event, errors: list[str]) -> None:
    while not stop.is_set():
        try:
            with rig.client() as c:
                r = c.post("/v1/checkpoints", content=rig.upload, headers=OCTET)
            if r.status_code not in (201, 507):
                errors.append(f"upload: {r.status_code} {r.text[:300]}")
        except httpx.TransportError:
            time.sleep(0.05)


def _is_child(pid: int, parent: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == parent


def _kill_a_worker(rig: Rig) -> str:
    with rig.client() as c:
        running = [j for j in all_jobs(c) if j["state"] == "running" and j["worker"]]
    for job in running:
        pid = int(job["worker"].rsplit(":", 1)[1])
        # Only a worker of a server this rig started, never anything else on the machine.
        if any(s.proc and _is_child(pid, s.proc.pid) for s in rig.servers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return f"worker of {job['id']}"
    return "no running job"


def _leftovers(data_dir: Path) -> str:
    """What a crash left for the janitor: writers' temporary files, files with no record."""
    ids, others = files_of(data_dir / "files")
    db = sqlite3.connect(f"file:{data_dir / 'curvegan.db'}?mode=ro", uri=True)
    with contextlib.closing(db):
        recorded = {row[0] for row in db.execute("SELECT id FROM checkpoints")}
    temp = sum(1 for name in others if name.endswith(".tmp"))
    return f"left {temp} temp, {len(ids - recorded)} unrecorded file(s)"


def _kill_a_server(rig: Rig, restart: bool) -> str:
    victim = rig.rng.randrange(len(rig.servers)) if len(rig.servers) > 1 else 0
    server = rig.servers[victim]
    server.kill9()
    if not restart:
        rig.servers.pop(victim)
        return f"server {victim + 1} of {len(rig.servers) + 1} killed"
    left = _leftovers(rig.data_dir)  # the only server is down: nothing moves meanwhile
    server.start(timeout=60)
    return left


def run_round(rig: Rig, kind: str, jobs: int = 1, timeout: float = 90.0) -> str:
    """One round of ``kind`` with ``jobs`` jobs that must succeed and one that is cancelled;
    returns what happened, in words. Raises on a broken invariant."""
    rng = rig.rng
    # Often enough that a kill is likely to land in a checkpoint's write.
    every = rng.choice([20, 50, 250])
    config = {"steps": rng.randrange(1000, 3000), "checkpoint_every": every, "log_every": 100}
    with rig.client() as c:
        made = [c.post("/v1/jobs", json={"config": config}).json() for _ in range(jobs)]
        long = c.post("/v1/jobs", json={"config": {"steps": 10_000_000, "log_every": 100}}).json()
        # The fault strikes while jobs train, not while the workers are still starting.
        wait_until(
            lambda: c.get(f"/v1/jobs/{made[0]['id']}").json()["state"] != "queued",
            timeout,
            "the first job started",
        )
    cancel_first = rng.random() < 0.5
    if cancel_first:
        time.sleep(rng.uniform(0, 0.3))
        _cancel(rig, long["id"])
    stop_uploads = threading.Event()
    upload_errors: list[str] = []
    uploader = threading.Thread(
        target=_uploads, args=(rig, stop_uploads, upload_errors), daemon=True
    )
    if kind == "kill_server":  # while uploads are written too
        uploader.start()
    delay = rng.uniform(0.05, 1.0)
    time.sleep(delay)
    what = f"{kind} at {delay:.2f}s (checkpoint every {every} steps)"
    if kind == "kill_server":
        what += f" ({_kill_a_server(rig, restart=True)})"
    elif kind == "kill_worker":
        what += f" ({_kill_a_worker(rig)})"
    elif kind == "second_server":
        rig.start()
        time.sleep(rng.uniform(0.1, 2.0))
        what += f" ({_kill_a_server(rig, restart=False)})"
    elif kind == "disk_full":
        fillers = fill(rig.data_dir)
        try:
            time.sleep(rng.uniform(0.2, 2.0))
            # A save that found room as the disk filled prunes older checkpoints after it, and
            # the janitor sweeps leftovers: what they freed meanwhile is taken again first.
            fillers += fill(rig.data_dir, "refill")
            with rig.client() as c:
                r = c.post("/v1/checkpoints", content=rig.upload, headers=OCTET)
                assert r.status_code == 507, f"upload on a full disk: {r.status_code} {r.text}"
        finally:
            free(fillers)
    stop_uploads.set()
    if uploader.is_alive():
        uploader.join(timeout=30)
    assert not upload_errors, upload_errors
    if not cancel_first:
        _cancel(rig, long["id"])
    while len(rig.servers) > 1:  # one server from here on
        rig.servers.pop().stop()
    with rig.client() as c:
        done = {j["id"]: j for j in wait_all_final(c, timeout, rig.primary.log())}
        for job in made:
            got = done[job["id"]]
            assert got["state"] == "succeeded", f"{what}: {got}\n{rig.primary.log()[-3000:]}"
            ck = c.get(f"/v1/checkpoints/{got['latest_checkpoint']}").json()
            assert ck["step"] == got["steps"], f"{what}: final checkpoint {ck}"
        for job_id in rig.cancelled:
            assert done[job_id]["state"] == "cancelled", f"{what}: a lost cancel {done[job_id]}"
        for job in done.values():
            assert job["state"] in FINAL
            assert_no_server_paths(str(job), rig.data_dir)
        records = check_files_match_records(c, rig.data_dir / "files")
        for job_id in done:  # retention held through the fault: the newest and the best
            kept = [ck for ck in records if ck["job_id"] == job_id]
            assert len(kept) <= KEEP + 1, f"{what}: {job_id} kept {len(kept)} checkpoints"
        # Every job is final: all its checkpoints can go, which keeps the disk small.
        for ck in records:
            r = c.delete(f"/v1/checkpoints/{ck['id']}")
            assert r.status_code == 204, f"{what}: delete {r.status_code} {r.text}"
        check_files_match_records(c, rig.data_dir / "files")
    return f"{what}: ok, {len(records)} checkpoints checked"
