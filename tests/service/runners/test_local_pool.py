"""The embedded runner's warm pool over real HTTP: a crashed or hung worker process is
replaced and its job resumes exactly; two servers on one data directory train a job once."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import torch

from gan_engine import TrainConfig, checkpoint_from_bytes
from gan_engine.population import Population
from tests.conftest import Server
from tests.helpers import FINAL, LONG_RUN


def create(client: httpx.Client, config: dict) -> dict:
    r = client.post("/v1/jobs", json={"config": config})
    assert r.status_code == 202, r.text
    return r.json()


def reference_generator(config: dict) -> dict[str, torch.Tensor]:
    # The engine jobs run on: a population of one.
    pop = Population([TrainConfig.from_dict(config)])
    pop.run()
    return {k: v for k, v in pop.member_checkpoint(0).tensors.items() if k.startswith("g.")}


def assert_finished_like_the_reference(client: httpx.Client, done: dict, reference: dict) -> None:
    assert done["state"] == "succeeded", done
    rows = client.get(f"/v1/jobs/{done['id']}/metrics").json()["items"]
    assert [r["step"] for r in rows] == list(range(100, 3001, 100))
    data = client.get(f"/v1/checkpoints/{done['latest_checkpoint']}/file").content
    got = checkpoint_from_bytes(data)
    assert got.step == 3000
    for key, value in reference.items():
        assert torch.equal(got.tensors[key], value), f"{key} differs from an uninterrupted run"


def worker_pid(job: dict) -> int:
    assert job["worker"] and job["worker"].startswith("local:"), job
    return int(job["worker"].rsplit(":", 1)[1])


def running_past(
    client: httpx.Client, job_id: str, step: int, logs: Callable[[], str], timeout: float = 60
) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] in {"queued", "running"}, f"{job}\n{logs()[-3000:]}"
        if job["state"] == "running" and job["step"] >= step and job["latest_checkpoint"]:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job never passed step {step}: {job}\n{logs()[-3000:]}")


def long_job_running_past(
    server: Server, c: httpx.Client, seed: int, step: int
) -> tuple[dict, Future[dict[str, torch.Tensor]], dict]:
    """A LONG_RUN job, its uninterrupted reference training in a thread, and the job once it
    runs past ``step`` with a checkpoint."""
    job = create(c, {**LONG_RUN, "seed": seed})
    reference = ThreadPoolExecutor(1).submit(reference_generator, job["config"])
    return job, reference, running_past(c, job["id"], step, server.log)


def test_a_killed_worker_is_replaced_and_its_job_resumes_exactly(
    make_server: Callable[..., Server], wait_state: Callable[..., dict]
) -> None:
    server = make_server(max_concurrent_jobs="1", lease_seconds="2")
    with server.client() as c:
        job, reference, seen = long_job_running_past(server, c, 31, 1000)
        os.kill(worker_pid(seen), signal.SIGKILL)
        done = wait_state(c, job["id"], FINAL, timeout=90)
        assert worker_pid(done) != worker_pid(seen), "the job must run on a new process"
        assert_finished_like_the_reference(c, done, reference.result(timeout=120))
        assert "exited unexpectedly" in server.log()
        # The pool is whole again: the next job runs.
        assert wait_state(c, create(c, {"steps": 200})["id"], FINAL)["state"] == "succeeded"


def test_a_hung_worker_is_killed_replaced_and_its_job_recovered(
    make_server: Callable[..., Server], wait_state: Callable[..., dict]
) -> None:
    server = make_server(max_concurrent_jobs="1", lease_seconds="2")
    with server.client() as c:
        job, reference, seen = long_job_running_past(server, c, 32, 600)
        hung = worker_pid(seen)
        os.kill(hung, signal.SIGSTOP)  # alive but silent: only its missing heartbeat tells
        try:
            done = wait_state(c, job["id"], FINAL, timeout=90)
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed by the pool, as it should
                os.kill(hung, signal.SIGCONT)
        assert worker_pid(done) != hung
        assert_finished_like_the_reference(c, done, reference.result(timeout=120))
        assert "hung" in server.log()


def test_a_job_that_keeps_losing_its_worker_fails_and_the_pool_lives_on(
    make_server: Callable[..., Server], wait_state: Callable[..., dict]
) -> None:
    server = make_server(max_concurrent_jobs="1", max_worker_losses="1")
    with server.client() as c:
        job = create(c, {**LONG_RUN, "seed": 33})
        seen = running_past(c, job["id"], 500, server.log)
        os.kill(worker_pid(seen), signal.SIGKILL)
        done = wait_state(c, job["id"], FINAL, timeout=30)
        assert done["state"] == "failed" and "lost 1 times" in done["error"], done
        assert wait_state(c, create(c, {"steps": 200})["id"], FINAL)["state"] == "succeeded"


def test_two_servers_on_one_data_dir_train_a_job_once_and_take_over_from_each_other(
    tmp_path: Path, wait_state: Callable[..., dict]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {"CURVEGAN_LEASE_SECONDS": "2", "CURVEGAN_MAX_CONCURRENT_JOBS": "1"}
    servers = [Server(data_dir=data, env=env), Server(data_dir=data, env=env)]
    pool = ThreadPoolExecutor(1)
    try:
        for s in servers:
            s.start()
        with servers[0].client() as a, servers[1].client() as b:
            # One job per pool at most: three jobs at once keep both pools busy; each is
            # trained once (one metric row per logged step, no double checkpoints).
            jobs = [create(a if i % 2 else b, {"steps": 1500, "seed": i}) for i in range(3)]
            for job in jobs:
                done = wait_state(a, job["id"], FINAL, timeout=90)
                assert done["state"] == "succeeded", done
                rows = b.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
                assert [r["step"] for r in rows] == list(range(100, 1501, 100))
                cks = b.get("/v1/checkpoints", params={"job_id": job["id"]}).json()["items"]
                assert sorted(ck["step"] for ck in cks) == [1000, 1500], cks

            # Server A dies with a job; B takes it over once A's lease lapses.
            job = create(a, {**LONG_RUN, "seed": 34})
            reference = pool.submit(reference_generator, job["config"])
            seen = running_past(b, job["id"], 1000, lambda: servers[0].log() + servers[1].log())
            pid = worker_pid(seen)
            owner = next(s for s in servers if _parent_of(pid) == s.proc.pid)  # type: ignore[union-attr]
            other = servers[1] if owner is servers[0] else servers[0]
            owner.kill9()
            with other.client() as c:
                done = wait_state(c, job["id"], FINAL, timeout=90)
                assert_finished_like_the_reference(c, done, reference.result(timeout=120))
                assert worker_pid(done) != pid
    finally:
        for s in servers:
            s.stop()


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
