"""Crash safety over real HTTP: kill -9 of the server mid-run loses nothing and the interrupted
job finishes with the weights of an uninterrupted run; a diverging job fails, the server lives."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import torch

from gan_engine import Checkpoint, LogRecord, TrainConfig, checkpoint_from_bytes
from gan_engine.population import Population
from tests.helpers import FINAL, LONG_RUN, Server, poll, tiny_checkpoint

# 3000 steps at batch 256 take a few seconds: the kill lands between steps 1000 and 3000.
RESTART_CONFIG = {**LONG_RUN, "seed": 20240601}


def train_in_process(config: dict) -> tuple[Checkpoint, list[LogRecord]]:
    """The uninterrupted run: the same config trained in one go in this process, on the
    engine jobs run on (a population of one)."""
    pop = Population([TrainConfig.from_dict(config)])
    records: list[LogRecord] = []
    pop.run(on_log=lambda batch: records.extend(batch.values()))
    return pop.member_checkpoint(0), records


def create(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, f"POST /v1/jobs {body} -> {r.status_code} {r.text}"
    return r.json()


def checkpoints_of(client: httpx.Client, job_id: str) -> list[dict]:
    r = client.get("/v1/checkpoints", params={"job_id": job_id})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_kill9_mid_run_then_restart_resumes_exactly(
    make_server: Callable[..., Server], wait_state: Callable[..., dict]
) -> None:
    # Every checkpoint kept (no retention): those from before the crash are checked after it.
    server = make_server(max_concurrent_jobs="2", keep_checkpoints="100")
    pool = ThreadPoolExecutor(1)
    with server.client() as c:
        small = create(c, {"name": "before", "config": {"steps": 200, "log_every": 100}})
        job = create(c, {"name": "interrupted", "config": RESTART_CONFIG})
        # The reference run trains meanwhile, in a thread of this process (torch frees the GIL).
        reference = pool.submit(train_in_process, job["config"])
        small_done = wait_state(c, small["id"], FINAL, timeout=60)
        assert small_done["state"] == "succeeded", f"{small_done}\n{server.log()[-3000:]}"
        small_ckpts = checkpoints_of(c, small["id"])
        assert small_ckpts, "the finished job has no checkpoint"

        def past_1000(seen: dict) -> bool:
            if seen["state"] == "running" and seen["step"] >= 1000 and seen["latest_checkpoint"]:
                return True
            assert seen["state"] in {"queued", "running"}, f"{seen}\n{server.log()[-3000:]}"
            return False

        seen = poll(
            lambda: c.get(f"/v1/jobs/{job['id']}").json(),
            past_1000,
            60,
            "the job past step 1000 with a checkpoint",
            interval=0.02,
            logs=lambda: server.log()[-3000:],
        )
    assert seen["step"] < 3000, f"the job finished before the kill could land: {seen}"

    server.kill9()
    killed_at_step = seen["step"]
    server.start()

    with server.client() as c:
        # Everything finished before the crash is still there.
        again = c.get(f"/v1/jobs/{small['id']}")
        assert again.status_code == 200, again.text
        assert again.json() == small_done, (again.json(), small_done)
        assert checkpoints_of(c, small["id"]) == small_ckpts
        for ckpt in small_ckpts:
            r = c.get(f"/v1/checkpoints/{ckpt['id']}/file")
            assert r.status_code == 200 and len(r.content) == ckpt["size_bytes"], r.status_code
        listed = c.get("/v1/jobs").json()
        assert {small["id"], job["id"]} <= {j["id"] for j in listed["items"]}, listed
        before_crash = checkpoints_of(c, job["id"])
        assert any(ck["step"] >= 1000 for ck in before_crash), before_crash

        # The interrupted job is back in the queue or running without anyone asking.
        resumed = wait_state(c, job["id"], {"queued", "running"} | FINAL, timeout=10)
        assert resumed["state"] != "failed", f"{resumed}\n{server.log()[-3000:]}"
        done = wait_state(c, job["id"], FINAL, timeout=90)
        assert done["state"] == "succeeded", f"{done}\n{server.log()[-3000:]}"
        assert done["step"] == 3000 and done["progress"] == 1.0, done
        assert done["error"] is None, done
        assert done["config"] == job["config"], (done["config"], job["config"])

        # Every logged step once, ascending, across the crash.
        rows = c.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
        steps = [row["step"] for row in rows]
        assert steps == list(range(100, 3001, 100)), f"metric steps after restart: {steps}"

        # The checkpoints from before the crash are still listed; the final one is at 3000.
        after = checkpoints_of(c, job["id"])
        assert {ck["id"] for ck in before_crash} <= {ck["id"] for ck in after}, (
            before_crash,
            after,
        )
        final_id = done["latest_checkpoint"]
        final = c.get(f"/v1/checkpoints/{final_id}").json()
        assert final["step"] == 3000 and final["job_id"] == job["id"], final
        r = c.get(f"/v1/checkpoints/{final_id}/file")
        assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
        data = r.content
        assert len(data) == final["size_bytes"], (len(data), final)

    expected, records = reference.result(timeout=120)
    pool.shutdown()
    got = checkpoint_from_bytes(data)
    assert got.step == expected.step == 3000, (got.step, expected.step)
    assert got.config == expected.config, (got.config, expected.config)
    assert set(got.tensors) == set(expected.tensors), sorted(
        set(got.tensors) ^ set(expected.tensors)
    )
    different = [
        k for k in expected.tensors if not torch.equal(got.tensors[k], expected.tensors[k])
    ]
    assert not different, (
        f"killed at step {killed_at_step}: tensors differ from an uninterrupted run: {different}"
    )
    # The metric history matches the uninterrupted run's too.
    for row, rec in zip(rows, records, strict=True):
        assert row["step"] == rec.step
        for key in ("d_loss", "g_loss", "d_accuracy", "in_band", "resid", "w1_a"):
            assert abs(row[key] - getattr(rec, key)) <= 1e-6 * max(1.0, abs(row[key])), (
                key,
                row,
                rec,
            )


def test_diverging_job_fails_naming_the_step_and_the_server_lives(
    live_server: Server, shared_client: httpx.Client, wait_state: Callable[..., dict]
) -> None:
    """On the session's shared server: a job of bad weights must not take it down."""
    server, client = live_server, shared_client
    ckpt = tiny_checkpoint(seed=3, steps=50, log_every=25, checkpoint_every=0)
    # D's weights: a G this huge is refused at upload (its curves are not finite).
    poisoned = {k: (v * 1e30 if k.startswith("d.") else v) for k, v in ckpt.tensors.items()}
    assert all(torch.isfinite(v).all() for v in poisoned.values() if v.is_floating_point())
    data = type(ckpt)(ckpt.config, ckpt.step, poisoned, ckpt.metrics).to_bytes()

    r = client.post(
        "/v1/checkpoints", content=data, headers={"content-type": "application/octet-stream"}
    )
    assert r.status_code == 201, f"upload -> {r.status_code} {r.text[:500]}"
    uploaded = r.json()
    assert uploaded["source"] == "upload" and uploaded["step"] == 50, uploaded

    job = create(
        client,
        {"resume_from": uploaded["id"], "config": {"steps": 300, "log_every": 50}},
    )
    done = wait_state(client, job["id"], FINAL, timeout=60)
    assert done["state"] == "failed", f"{done}\n{server.log()[-3000:]}"
    error = done["error"]
    assert isinstance(error, str) and "step" in error.lower(), (
        f"error does not name the step: {done}"
    )
    assert any(ch.isdigit() for ch in error), f"error names no step number: {error!r}"
    assert done["finished_at"] is not None, done
    # No checkpoint of the bad weights was kept for the job.
    for ck in checkpoints_of(client, job["id"]):
        assert ck["step"] <= 50 or ck["id"] == uploaded["id"], ck

    # The server lives on and trains the next job.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    ok = create(client, {"config": {"steps": 200, "log_every": 100}})
    ok_done = wait_state(client, ok["id"], FINAL, timeout=60)
    assert ok_done["state"] == "succeeded", f"{ok_done}\n{server.log()[-3000:]}"


def test_sigterm_ends_open_event_streams_and_a_client_resumes_after_the_restart(
    make_server: Callable[..., Server],
) -> None:
    # Before: uvicorn waits for open responses before it shuts down, and a job's stream ends
    # only with its job, so one open dashboard held a SIGTERM for the whole job.
    server = make_server()
    assert server.proc is not None
    with server.client() as http:
        job = create(http, {"config": {"steps": 10_000_000, "log_every": 50}})
        url = f"/v1/jobs/{job['id']}/events"
        events: list[tuple[str, str]] = []  # (event, id)
        with http.stream("GET", url, timeout=httpx.Timeout(10.0, read=60.0)) as stream:
            name = ""
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("id: "):
                    events.append((name, line.removeprefix("id: ")))
                    if len(events) == 3:
                        break
            stopped = time.monotonic()
            server.proc.terminate()
            # The stream ends cleanly (no transport error), on a frame boundary.
            rest = []
            for line in lines:
                rest.append(line)
                took = time.monotonic() - stopped
                assert took < 15, f"the stream was still open {took:.1f} s after SIGTERM"
            assert rest[-1:] in ([], [""]), rest[-3:]
            assert not any('"state":"succeeded"' in line for line in rest)
        server.proc.wait(timeout=30)
        took = time.monotonic() - stopped
    assert took < 15, f"the server took {took:.1f} s to stop with a stream open"
    assert "Application shutdown complete" in server.log()

    server.start()
    last = int(events[-1][1])
    with server.client() as http:
        headers = {"Last-Event-ID": str(last)}
        with http.stream("GET", url, headers=headers, timeout=30.0) as stream:
            ids = []
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    ids.append(int(line.removeprefix("id: ")))
                    break
        assert ids and ids[0] > last, (ids, last)
        http.post(f"/v1/jobs/{job['id']}/cancel")
