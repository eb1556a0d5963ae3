"""Checkpoints under races and crashes, over real HTTP: a checkpoint a job will resume from
cannot be deleted; a download racing a delete is the whole file or a 404; the leftovers of
writers killed mid-write (temporary files, files whose record never came) are cleaned up,
and a live writer's file never is."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import AppClient
from tests.helpers import Server, tiny_checkpoint_bytes, wait_until
from tests.service.faults import FINAL, assert_no_server_paths

OCTET = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def data() -> bytes:
    return tiny_checkpoint_bytes(seed=2, steps=50, log_every=25, checkpoint_every=0)


def upload(c: httpx.Client, data: bytes) -> dict:
    r = c.post("/v1/checkpoints", content=data, headers=OCTET)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_checkpoint_a_queued_or_resuming_job_starts_from_cannot_be_deleted(
    make_app_client: Callable[..., AppClient], wait_state: Callable[..., dict], data: bytes
) -> None:
    # The API's rule, with one worker of the app's pool: in process.
    c = make_app_client(max_concurrent_jobs=1)
    blocker = c.post("/v1/jobs", json={"config": {"steps": 10_000_000}}).json()
    wait_state(c, blocker["id"], {"running"})
    sources = [upload(c, data) for _ in range(2)]

    def refused(checkpoint_id: str, job_id: str) -> None:
        r = c.delete(f"/v1/checkpoints/{checkpoint_id}")
        assert r.status_code == 409, f"{r.status_code} {r.text}"
        body = r.json()
        assert body["error"] == "conflict" and job_id in body["message"], body
        assert c.get(f"/v1/checkpoints/{checkpoint_id}").status_code == 200

    # Queued behind the blocker: it will start from its source.
    queued = c.post(
        "/v1/jobs", json={"resume_from": sources[0]["id"], "config": {"steps": 400}}
    ).json()
    refused(sources[0]["id"], queued["id"])
    c.post(f"/v1/jobs/{queued['id']}/cancel")
    c.post(f"/v1/jobs/{blocker['id']}/cancel")
    # Running from its source with no checkpoint of its own (none before its end): a
    # lost worker would start from the source again.
    config = {"steps": 10_000_000, "checkpoint_every": 0}
    resuming = c.post("/v1/jobs", json={"resume_from": sources[1]["id"], "config": config})
    assert resuming.status_code == 202, resuming.text
    resuming_id = resuming.json()["id"]
    wait_state(c, resuming_id, {"running"})
    refused(sources[1]["id"], resuming_id)
    c.post(f"/v1/jobs/{resuming_id}/cancel")
    for job_id in (queued["id"], resuming_id):
        done = wait_state(c, job_id, FINAL)
        assert done["state"] == "cancelled" and done["error"] is None, done
        assert_no_server_paths(str(done), c.data_dir)
    # Once no unfinished job needs them, they go.
    for source in sources:
        assert c.delete(f"/v1/checkpoints/{source['id']}").status_code == 204
        assert c.get(f"/v1/checkpoints/{source['id']}").status_code == 404


def test_a_download_racing_a_delete_is_the_whole_file_or_404(
    live_server: Server, shared_client: httpx.Client, data: bytes
) -> None:
    """Real concurrent requests on the shared server, on checkpoints of the test's own."""
    server = live_server
    ids = [upload(shared_client, data)["id"] for _ in range(40)]
    digest = hashlib.sha256(data).hexdigest()
    outcomes: dict[int, int] = {}

    def download(checkpoint_id: str) -> int:
        with server.client() as c:
            r = c.get(f"/v1/checkpoints/{checkpoint_id}/file")
        if r.status_code == 200:
            assert int(r.headers["content-length"]) == len(data), r.headers
            assert hashlib.sha256(r.content).hexdigest() == digest, len(r.content)
        else:
            assert r.status_code == 404, f"{r.status_code} {r.text[:300]}"
            assert r.json()["error"] == "not_found", r.text
        return r.status_code

    def delete(checkpoint_id: str) -> int:
        with server.client() as c:
            return c.delete(f"/v1/checkpoints/{checkpoint_id}").status_code

    with ThreadPoolExecutor(8) as pool:
        for checkpoint_id in ids:
            gets = [pool.submit(download, checkpoint_id) for _ in range(6)]
            gone = pool.submit(delete, checkpoint_id)
            for f in gets:
                status = f.result()
                outcomes[status] = outcomes.get(status, 0) + 1
            assert gone.result() == 204
    print(f"downloads racing deletes: {outcomes}")
    assert set(outcomes) <= {200, 404}, outcomes


def test_leftovers_of_killed_writers_are_removed_and_live_files_kept(
    make_server: Callable[..., Server], data: bytes
) -> None:
    server = make_server()  # the default age limit: an hour
    with server.client() as c:
        kept = upload(c, data)
    server.stop()
    files = server.data_dir / "files"
    old = time.time() - 2 * 3600

    def put(name: str, mtime: float | None = None) -> Path:
        path = files / name
        if not path.exists():
            path.write_bytes(data[:1000])
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    # A worker killed mid-write (its temporary file), one killed between writing a file and
    # adding its record, and an upload killed mid-write (remote storage's naming): old.
    stale = [
        put(".ck_0123456789abcdef0123.safetensors.x1y2z3.tmp", old),
        put("ck_fedcba9876543210fedc.safetensors", old),
        put(".ck_00000000000000000000.4f6c1b0e2f.tmp", old),
    ]
    # A write in progress now, on this or another server: it must be left alone, as must an
    # old file that has its record.
    live = [put(".ck_11111111111111111111.safetensors.abcdef.tmp")]
    put(f"{kept['id']}.safetensors", old)
    server.start()
    wait_until(
        lambda: not any(p.exists() for p in stale),
        10,
        f"the janitor removing {[p.name for p in stale if p.exists()]}",
        logs=lambda: server.log()[-2000:],
    )
    assert all(p.exists() for p in live)
    with server.client() as c:
        r = c.get(f"/v1/checkpoints/{kept['id']}/file")
        assert r.status_code == 200 and r.content == data
        # A record whose file is gone (removed by hand): 404s that name no server path.
        (files / f"{kept['id']}.safetensors").unlink()
        for r in (
            c.get(f"/v1/checkpoints/{kept['id']}/file"),
            c.post(f"/v1/checkpoints/{kept['id']}/samples", json={"n": 2}),
        ):
            assert r.status_code == 404, f"{r.status_code} {r.text}"
            assert_no_server_paths(r.text, server.data_dir)
