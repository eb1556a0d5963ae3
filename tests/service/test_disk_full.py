"""A full disk, for real: a small tmpfs as the server's data dir (or only its files), filled
to the last byte. Every write answers 507 with a clear JSON error, nothing half-made is left,
no job is stuck or trained again for want of space (a final checkpoint waits for room, up to
CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS), and the service recovers by itself once space is freed.
And CURVEGAN_MAX_DATA_BYTES: an upload past it is a 507 that names it, nothing stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AppClient
from tests.helpers import Server, poll, tiny_checkpoint_bytes
from tests.service.faults import (
    FINAL,
    assert_no_server_paths,
    check_files_match_records,
    fill,
    free,
    tmpfs,
)

# Short leases: a job whose worker stopped on the full disk is back in the queue soon after.
ENV = {
    "CURVEGAN_MAX_CONCURRENT_JOBS": "1",
    "CURVEGAN_LEASE_SECONDS": "2",
    "CURVEGAN_MAX_WORKER_LOSSES": "100",
    "CURVEGAN_STALE_FILE_SECONDS": "1",
}
LONG = {"steps": 10_000_000, "checkpoint_every": 500, "log_every": 100}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "8m") as path:
        yield path


def started(data_dir: Path, **env: str) -> Server:
    server = Server(data_dir=data_dir, env={**ENV, **env})
    server.start()
    return server


def assert_full(r: httpx.Response, what: str, or_status: int | None = None) -> bool:
    """The request was refused with the 507 of a full disk (True), or, where ``or_status`` is
    given, done (False): SQLite reuses its write-ahead log from the start after a checkpoint,
    so a small write to the database can still find room on a full disk."""
    if or_status is not None and r.status_code == or_status:
        return False
    assert r.status_code == 507, f"{what}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert body["error"] == "insufficient_storage", (what, body)
    assert "disk is full" in body["message"], (what, body)
    return True


def wait_job(c: httpx.Client, job_id: str, ok: Callable[[dict], bool], timeout: float) -> dict:
    return poll(lambda: c.get(f"/v1/jobs/{job_id}").json(), ok, timeout, f"job {job_id} there")


def test_a_full_data_disk_answers_507_loses_no_cancel_and_recovers_once_freed(
    disk: Path,
) -> None:
    server = started(disk)
    try:
        with server.client() as c:
            a = c.post("/v1/jobs", json={"config": LONG}).json()
            ran = wait_job(c, a["id"], lambda j: j["step"] >= 1000 and j["latest_checkpoint"], 60)
            first = ran["latest_checkpoint"]
            data = c.get(f"/v1/checkpoints/{first}/file").content
            uploaded = c.post(
                "/v1/checkpoints",
                content=data,
                headers={"content-type": "application/octet-stream"},
            ).json()
            # Queued behind the one worker: its cancel must not be lost.
            b = c.post("/v1/jobs", json={"config": LONG}).json()

            fillers = fill(disk)
            assert_full(
                c.post(
                    "/v1/checkpoints",
                    content=data,
                    headers={"content-type": "application/octet-stream"},
                ),
                "upload",
            )
            made = c.post("/v1/jobs", json={"config": {"steps": 100}})
            if not assert_full(made, "job creation", or_status=202):
                c.post(f"/v1/jobs/{made.json()['id']}/cancel")
            deleted = not assert_full(
                c.delete(f"/v1/checkpoints/{uploaded['id']}"), "delete", or_status=204
            )
            refused = assert_full(
                c.post(f"/v1/jobs/{b['id']}/cancel"), "cancel of a queued job", or_status=202
            )
            # A refused cancel left the job as it was; an accepted one took effect.
            expected = "queued" if refused else "cancelled"
            assert c.get(f"/v1/jobs/{b['id']}").json()["state"] == expected
            time.sleep(3)  # the worker meets the full disk; its lease lapses meanwhile
            stuck = c.get(f"/v1/jobs/{a['id']}").json()
            assert stuck["state"] in {"running", "queued"}, f"{stuck}\n{server.log()[-3000:]}"
            listed = c.get(f"/v1/checkpoints/{uploaded['id']}").status_code
            assert listed == (404 if deleted else 200), listed

            free(fillers)
            # Recovered without a restart: the refused requests succeed when made again (the
            # worker may have taken the queued job meanwhile: its cancel ends it all the same),
            # and the first job trains on past where the disk filled and saves checkpoints.
            assert c.post(f"/v1/jobs/{b['id']}/cancel").status_code == (202 if refused else 409)
            assert wait_job(c, b["id"], lambda j: j["state"] in FINAL, 30)["state"] == "cancelled"
            assert c.delete(f"/v1/checkpoints/{uploaded['id']}").status_code == (
                404 if deleted else 204
            )
            wait_job(
                c,
                a["id"],
                lambda j: j["state"] == "running" and j["step"] > stuck["step"] + 1000,
                60,
            )
            wait_job(c, a["id"], lambda j: j["latest_checkpoint"] != ran["latest_checkpoint"], 60)
            assert c.post(f"/v1/jobs/{a['id']}/cancel").status_code == 202
            done = wait_job(c, a["id"], lambda j: j["state"] in FINAL, 30)
            assert done["state"] == "cancelled" and done["error"] is None, done
            for job in (done, c.get(f"/v1/jobs/{b['id']}").json()):
                assert_no_server_paths(str(job), disk)
        with server.client() as c:
            check_files_match_records(c, disk / "files")
    finally:
        server.stop()


def test_a_full_files_disk_keeps_jobs_training_and_saves_once_freed(
    tmp_path: Path, disk: Path
) -> None:
    """The checkpoint files on a full disk, the database elsewhere: a job whose checkpoint
    cannot be written trains on; one that finishes unsaved is not 'succeeded' without its
    weights, nor failed, nor trained again: it holds its weights, retrying the save, until
    its final checkpoint is written."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = started(data_dir, CURVEGAN_STORAGE_URL=str(disk / "files"))
    try:
        with server.client() as c:
            warm = c.post("/v1/jobs", json={"config": {"steps": 200, "log_every": 100}}).json()
            wait_job(c, warm["id"], lambda j: j["state"] == "succeeded", 60)
            fillers = fill(disk)
            long = c.post("/v1/jobs", json={"config": LONG}).json()
            short = c.post("/v1/jobs", json={"config": {"steps": 600, "log_every": 100}})
            assert short.status_code == 202, short.text
            short_id = short.json()["id"]
            # The long job trains past several checkpoints it cannot save.
            past = wait_job(c, long["id"], lambda j: j["step"] >= 3000, 60)
            assert past["state"] == "running" and past["latest_checkpoint"] is None, past
            # Save-now cannot succeed: said at once, not after the save's 30 s wait.
            assert_full(c.post(f"/v1/jobs/{long['id']}/checkpoints"), "save now")
            assert c.post(f"/v1/jobs/{long['id']}/cancel").status_code == 202
            cancelled = wait_job(c, long["id"], lambda j: j["state"] in FINAL, 30)
            assert cancelled["state"] == "cancelled", cancelled
            waiting = wait_job(c, short_id, lambda j: j["step"] == 600, 30)
            time.sleep(2)  # the short job cannot save its end: it waits, it does not train again
            still = c.get(f"/v1/jobs/{short_id}").json()
            assert still["state"] == "running" and still["step"] == 600, still
            assert still["started_at"] == waiting["started_at"], "claimed and trained again"
            free(fillers)
            done = wait_job(c, short_id, lambda j: j["state"] in FINAL, 60)
            assert done["state"] == "succeeded", f"{done}\n{server.log()[-3000:]}"
            assert done["started_at"] == waiting["started_at"], "claimed and trained again"
            final = c.get(f"/v1/checkpoints/{done['latest_checkpoint']}").json()
            assert final["step"] == 600, final
            check_files_match_records(c, disk / "files")
    finally:
        server.stop()


def test_a_final_checkpoint_that_never_finds_room_fails_the_job_after_the_timeout(
    tmp_path: Path, disk: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = started(
        data_dir,
        CURVEGAN_STORAGE_URL=str(disk / "files"),
        CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS="2",
    )
    try:
        with server.client() as c:
            fill(disk)
            made = c.post("/v1/jobs", json={"config": {"steps": 300, "log_every": 100}}).json()
            first = wait_job(c, made["id"], lambda j: j["state"] == "running", 30)
            done = wait_job(c, made["id"], lambda j: j["state"] in FINAL, 60)
            assert done["state"] == "failed" and done["step"] == 300, done
            assert "disk was full" in done["error"], done
            assert "CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS" in done["error"], done
            assert done["started_at"] == first["started_at"], "claimed and trained again"
            assert_no_server_paths(str(done), disk)
    finally:
        server.stop()


def test_an_upload_past_the_data_cap_is_a_507_naming_it_and_stores_nothing(
    make_app_client: Callable[..., AppClient],
) -> None:
    data = tiny_checkpoint_bytes()
    upload = {"content": data, "headers": {"content-type": "application/octet-stream"}}
    roomy = make_app_client(max_data_bytes=10**9, workers=False)
    assert roomy.post("/v1/checkpoints", **upload).status_code == 201
    capped = make_app_client(max_data_bytes=len(data), workers=False)  # the database counts too
    r = capped.post("/v1/checkpoints", **upload)
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["error"] == "insufficient_storage", body
    assert "CURVEGAN_MAX_DATA_BYTES" in body["message"] and str(len(data)) in body["message"]
    assert capped.get("/v1/checkpoints").json()["items"] == []
    assert not any((capped.data_dir / "files").glob("*"))


def test_save_now_past_the_data_cap_is_a_507_at_once_and_the_job_trains_on(
    make_app_client: Callable[..., AppClient],
) -> None:
    c = make_app_client(max_data_bytes=1)  # the database alone is past it: no save can fit
    job = c.post("/v1/jobs", json={"config": LONG}).json()
    running = wait_job(c, job["id"], lambda j: j["state"] == "running" and j["step"] >= 500, 60)
    r = c.post(f"/v1/jobs/{job['id']}/checkpoints")
    assert r.status_code == 507, r.text
    assert "CURVEGAN_MAX_DATA_BYTES" in r.json()["message"], r.json()
    wait_job(c, job["id"], lambda j: j["step"] > running["step"] + 500, 30)  # it trains on
    assert c.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    done = wait_job(c, job["id"], lambda j: j["state"] in FINAL, 30)
    assert done["state"] == "cancelled", done
    assert done["latest_checkpoint"] is None and not any((c.data_dir / "files").glob("*"))
