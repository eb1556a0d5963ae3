"""A sweep's members train as populations: the pool's workers split the sweep between them,
each member still a job of its own (metrics, checkpoints, state), and a member trained in a
population ends as it would alone, to float rounding."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from gan_engine import TrainConfig, checkpoint_from_bytes
from gan_engine.population import Population
from tests.conftest import Server

FINAL = {"succeeded", "failed", "cancelled"}


def post_sweep(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def members(client: httpx.Client, sweep_id: str) -> list[dict]:
    r = client.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 1000})
    assert r.status_code == 200, r.text
    return sorted(r.json()["items"], key=lambda j: j["member_index"])


def wait_members(
    client: httpx.Client, sweep_id: str, timeout: float, logs: Callable[[], str]
) -> list[dict]:
    deadline = time.monotonic() + timeout
    jobs: list[dict] = []
    while time.monotonic() < deadline:
        jobs = members(client, sweep_id)
        if all(j["state"] in FINAL for j in jobs):
            return jobs
        time.sleep(0.1)
    raise AssertionError(
        f"sweep {sweep_id} not final: {[j['state'] for j in jobs]}\n{logs()[-3000:]}"
    )


def test_a_sweep_is_split_between_the_pool_workers_and_each_member_ends_as_alone(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(max_concurrent_jobs="2")
    with server.client() as c:
        # Both pool processes warm and idle first: a sweep posted while one still starts up
        # would rightly go to the other one alone.
        warm = [c.post("/v1/jobs", json={"config": {"steps": 1}}).json()["id"] for _ in range(2)]
        for job_id in warm:
            while c.get(f"/v1/jobs/{job_id}").json()["state"] not in FINAL:
                time.sleep(0.05)
        time.sleep(1.5)  # the slower process's warm-up (two training steps) is over too
        sweep = post_sweep(
            c,
            {
                "config": {"steps": 600, "log_every": 100, "checkpoint_every": 300},
                "vary": {"seed": [1, 2, 3], "lr_g": [1e-4, 3e-4]},
            },
        )
        jobs = wait_members(c, sweep["id"], 120, server.log)
        assert [j["state"] for j in jobs] == ["succeeded"] * 6, jobs
        # Two pool processes took three members each (one population per process).
        workers = [j["worker"] for j in jobs]
        assert len(set(workers)) == 2 and sorted(workers.count(w) for w in set(workers)) == [3, 3]
        for job in jobs:
            rows = c.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
            assert [r["step"] for r in rows] == list(range(100, 601, 100))
            cks = c.get("/v1/checkpoints", params={"job_id": job["id"]}).json()["items"]
            assert sorted(ck["step"] for ck in cks) == [300, 600]
        # Each member's final weights: those of the member trained alone.
        for job in jobs[::5]:
            alone = Population([TrainConfig.from_dict(job["config"])])
            alone.run()
            expected = alone.member_checkpoint(0).tensors
            data = c.get(f"/v1/checkpoints/{job['latest_checkpoint']}/file").content
            got = checkpoint_from_bytes(data).tensors
            for key in ("g.hidden.weight", "g.out.weight", "d.hidden.weight"):
                err = float((got[key] - expected[key]).abs().max())
                # The same maths in batched kernels of another batch count: rounding, grown
                # over 600 steps to ~1e-5-1e-4; a member trained with another member's
                # learning rate or seed would be off by 1e-2 and more.
                assert err < 5e-4, f"{job['id']} {key}: {err:.2e}"


def test_one_member_cancelled_mid_population_the_others_finish(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(max_concurrent_jobs="1")
    with server.client() as c:
        sweep = post_sweep(
            c,
            {
                "config": {
                    "steps": 4000,
                    "log_every": 100,
                    "checkpoint_every": 0,
                    "batch_size": 256,
                },
                "vary": {"seed": [1, 2, 3]},
            },
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = members(c, sweep["id"])
            if all(j["state"] == "running" and j["step"] >= 200 for j in jobs):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"members never all ran together: {jobs}\n{server.log()[-3000:]}")
        assert len({j["worker"] for j in jobs}) == 1, "one process trains the population"
        r = c.post(f"/v1/jobs/{jobs[1]['id']}/cancel")
        assert r.status_code == 202, r.text
        done = wait_members(c, sweep["id"], 120, server.log)
        assert [j["state"] for j in done] == ["succeeded", "cancelled", "succeeded"], done
        assert done[1]["step"] < 4000 and done[1]["latest_checkpoint"], done[1]
        assert done[0]["step"] == done[2]["step"] == 4000
