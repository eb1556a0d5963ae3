"""Cluster mode on the real services: two API servers and two worker nodes on one PostgreSQL
store, one RabbitMQ queue and one shared checkpoint directory."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import torch

from gan_engine import TrainConfig, checkpoint_from_bytes
from gan_engine.population import Population
from tests.helpers import FINAL, LONG_RUN
from tests.service.cluster.conftest import Cluster, WorkerNode, wait_until


def create(client: httpx.Client, config: dict) -> dict:
    r = client.post("/v1/jobs", json={"config": config})
    assert r.status_code == 202, r.text
    return r.json()


def get(client: httpx.Client, job_id: str) -> dict:
    r = client.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_final(cluster: Cluster, client: httpx.Client, job_id: str, timeout: float = 90) -> dict:
    job = wait_until(
        lambda: (j := get(client, job_id))["state"] in FINAL and j,
        timeout,
        f"job {job_id} final",
        cluster.logs,
    )
    return job  # type: ignore[return-value]


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def node_of(job: dict) -> str:
    """The worker node from the job's worker id, celery:<node>:<pid>."""
    assert job["worker"] and job["worker"].startswith("celery:"), job
    return job["worker"].split(":")[1]


def reference_generator(config: dict) -> dict[str, torch.Tensor]:
    # The engine jobs run on: a population of one.
    pop = Population([TrainConfig.from_dict(config)])
    pop.run()
    return {k: v for k, v in pop.member_checkpoint(0).tensors.items() if k.startswith("g.")}


def final_generator(client: httpx.Client, job: dict) -> dict[str, torch.Tensor]:
    r = client.get(f"/v1/checkpoints/{job['latest_checkpoint']}/file")
    assert r.status_code == 200, r.text
    ckpt = checkpoint_from_bytes(r.content)
    assert ckpt.step == job["steps"]
    return {k: v for k, v in ckpt.tensors.items() if k.startswith("g.")}


def assert_same_weights(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), f"{key} differs from the uninterrupted run"


def metric_steps(client: httpx.Client, job_id: str) -> list[int]:
    rows = client.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
    return [row["step"] for row in rows]


def running_on_a_node(
    cluster: Cluster, client: httpx.Client, job_id: str, step: int, saved: bool = True
) -> dict:
    def check() -> dict | None:
        job = get(client, job_id)
        assert job["state"] in {"queued", "running"}, f"{job}\n{cluster.logs()}"
        ok = job["state"] == "running" and job["step"] >= step
        ok = ok and (job["latest_checkpoint"] or not saved)
        return job if ok else None

    return wait_until(check, 60, f"job {job_id} past step {step}", cluster.logs)  # type: ignore[return-value]


def steps_of_file(path: Path) -> str:
    """A checkpoint file's step and seed, to tell whose it was when it should not be there."""
    try:
        ckpt = checkpoint_from_bytes(path.read_bytes())
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    return f"step {ckpt.step}, seed {ckpt.config.seed}"


def node_named(cluster: Cluster, name: str) -> WorkerNode:
    return next(n for n in cluster.nodes if n.name == name)


def long_job_on_a_node(
    cluster: Cluster, via: httpx.Client, watch: httpx.Client, seed: int, step: int
) -> tuple[dict, Future[dict[str, torch.Tensor]], dict, WorkerNode]:
    """A LONG_RUN job created through ``via``, its uninterrupted reference training in a thread,
    and, once ``watch`` sees it running past ``step`` with a checkpoint, the job as seen and
    the node it runs on."""
    job = create(via, {**LONG_RUN, "seed": seed})
    reference = ThreadPoolExecutor(1).submit(reference_generator, job["config"])
    seen = running_on_a_node(cluster, watch, job["id"], step)
    return job, reference, seen, node_named(cluster, node_of(seen))


def test_jobs_spread_over_both_nodes_and_either_api_serves_them(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:
        # Each node runs one job at a time: two jobs at once must land on both nodes.
        jobs = [create(a, {**LONG_RUN, "seed": 1}), create(b, {**LONG_RUN, "seed": 2})]
        finals = [wait_final(cluster, b, job["id"]) for job in jobs]
        for done in finals:
            assert done["state"] == "succeeded", f"{done}\n{cluster.logs()}"
        # They ran at once: each started before the other finished (read from the store's
        # timestamps, which a poll of the states can miss when the overlap is short).
        (s1, f1), (s2, f2) = (
            (_ts(done["started_at"]), _ts(done["finished_at"])) for done in finals
        )
        assert s1 < f2 and s2 < f1, f"the jobs did not run at once: {finals}\n{cluster.logs()}"
        nodes = {node_of(done) for done in finals}
        assert nodes == {n.name for n in cluster.nodes}, nodes
        for job, done in zip(jobs, finals, strict=True):
            assert get(a, job["id"]) == done  # one store: both servers say the same
            assert metric_steps(a, job["id"]) == list(range(100, 3001, 100))
        # A checkpoint written by a worker on one node downloads through either server.
        ck = done["latest_checkpoint"]
        assert (
            a.get(f"/v1/checkpoints/{ck}/file").content
            == b.get(f"/v1/checkpoints/{ck}/file").content
        )


def test_kill9_of_a_node_mid_job_finishes_on_the_other_bit_identical(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:
        job, reference, seen, victim = long_job_on_a_node(cluster, a, b, 20240601, 1000)
        assert seen["step"] < 3000
        victim.kill9()
        try:
            done = wait_final(cluster, a, job["id"])
            assert done["state"] == "succeeded", f"{done}\n{cluster.logs()}"
            assert node_of(done) != victim.name, done
            assert metric_steps(b, job["id"]) == list(range(100, 3001, 100))
            assert_same_weights(final_generator(b, done), reference.result(timeout=120))
        finally:
            victim.start()


def test_cancel_through_the_other_api_ends_a_running_job_within_seconds(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:
        job = create(a, {"steps": 10_000_000, "log_every": 100, "checkpoint_every": 0})
        running_on_a_node(cluster, a, job["id"], 100, saved=False)
        start = time.monotonic()
        r = b.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.status_code == 202, r.text
        done = wait_until(
            lambda: (j := get(b, job["id"]))["state"] in FINAL and j,
            10,
            "cancelled",
            cluster.logs,
        )
        took = time.monotonic() - start
        assert done["state"] == "cancelled", done
        # The request travels through the store to a worker on another node: about a second
        # (one lease renewal); the contract says within ~2 s.
        assert took < 3.0, f"cancel took {took:.2f}s"
        assert done["latest_checkpoint"], "a cancelled job keeps a final checkpoint"


def test_a_paused_node_loses_its_job_and_cannot_overwrite_the_new_owner(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:

        def files_and_records() -> tuple[set[str], set[str]]:
            items = a.get("/v1/checkpoints", params={"limit": 1000}).json()["items"]
            files = {p.name.removesuffix(".safetensors") for p in cluster.storage_dir.iterdir()}
            return files, {c["id"] for c in items}

        # A node killed by an earlier test of the module may have left a file with no record
        # (the janitor's, after CURVEGAN_STALE_FILE_SECONDS): only new ones count here.
        files, records = files_and_records()
        left_before = files - records
        job, reference, _, paused = long_job_on_a_node(cluster, a, a, 7, 600)
        paused.signal_group(signal.SIGSTOP)
        try:
            # The lease (3 s) lapses, a server re-queues the job, the other node takes it.
            moved = wait_until(
                lambda: (
                    (j := get(b, job["id"]))["state"] == "running"
                    and node_of(j) != paused.name
                    and j
                ),
                30,
                "the job on the other node",
                cluster.logs,
            )
            assert moved
        finally:
            paused.signal_group(signal.SIGCONT)
        done = wait_final(cluster, a, job["id"])
        assert done["state"] == "succeeded", f"{done}\n{cluster.logs()}"
        assert node_of(done) != paused.name, done
        # The resumed worker's writes were all refused: the history and the weights are
        # exactly those of an uninterrupted run, and it left no file behind.
        assert metric_steps(a, job["id"]) == list(range(100, 3001, 100))
        assert_same_weights(final_generator(a, done), reference.result(timeout=120))
        wait_until(lambda: "lease" in paused.log(), 15, "the paused worker noticing", cluster.logs)

        # A write the paused worker had in flight is refused and its file removed by that
        # worker once it runs again, which under load may come a moment after its log line
        # (the janitor, an hour away, plays no part here).
        deadline = time.monotonic() + 20
        files, records = files_and_records()
        while files - records - left_before and time.monotonic() < deadline:
            time.sleep(0.2)
            files, records = files_and_records()
        assert not records - files, records - files
        left = files - records - left_before
        assert not left, {
            ck: steps_of_file(cluster.storage_dir / f"{ck}.safetensors") for ck in left
        }


def test_a_broker_restart_mid_job_loses_nothing(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:
        running = create(a, {**LONG_RUN, "seed": 11})
        running_on_a_node(cluster, a, running["id"], 300)
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        try:
            # Created while the broker is down: queued in the store, published once it is back.
            waiting = create(b, {"steps": 300, "seed": 12})
        finally:
            subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
        for job in (running, waiting):
            done = wait_final(cluster, a, job["id"], timeout=120)
            assert done["state"] == "succeeded", f"{done}\n{cluster.logs()}"
        assert metric_steps(a, running["id"]) == list(range(100, 3001, 100))


def test_events_of_a_job_follow_through_either_api(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:
        job = create(a, {"steps": 1500, "log_every": 100, "seed": 5})

        def stream(client: httpx.Client) -> list[tuple[str, dict]]:
            frames = []
            with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=60) as r:
                assert r.status_code == 200
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        frames.append((event, json.loads(line[6:])))
            return frames

        with ThreadPoolExecutor(2) as pool:
            via_a, via_b = pool.map(stream, (a, b))
    for frames in (via_a, via_b):
        assert frames[0][0] == "state" and frames[-1][0] == "state", frames[:1] + frames[-1:]
        assert frames[-1][1]["state"] == "succeeded", frames[-1]
        steps = [data["step"] for event, data in frames if event == "metrics"]
        assert steps == list(range(100, 1501, 100)), steps


@pytest.mark.parametrize("broker", ["redis"])
def test_redis_is_accepted_as_the_broker(
    broker: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.service.cluster.conftest import running_cluster
    from tests.services import redis_url

    with (
        running_cluster(
            tmp_path_factory.mktemp(broker), apis=1, nodes=1, broker_url=redis_url(db=15)
        ) as c,
        c.apis[0].client() as api,
    ):
        job = create(api, {"steps": 500, "seed": 3})
        done = wait_final(c, api, job["id"], timeout=60)
        assert done["state"] == "succeeded", f"{done}\n{c.logs()}"
        assert node_of(done) == c.nodes[0].name


def test_a_node_stopped_mid_job_hands_it_over_after_saving(cluster: Cluster) -> None:
    a, b = (s.client() for s in cluster.apis)
    with a, b:
        job, reference, _, node = long_job_on_a_node(cluster, a, a, 41, 600)
        # A deploy or `docker stop`: SIGTERM, a warm shutdown that would wait for the job;
        # the node asks its jobs, through the store, to save and go back to the queue.
        start = time.monotonic()
        node.stop()
        stopped_in = time.monotonic() - start
        try:
            assert stopped_in < 15, f"the node took {stopped_in:.1f}s to stop"
            done = wait_final(cluster, b, job["id"])
            assert done["state"] == "succeeded", f"{done}\n{cluster.logs()}"
            assert node_of(done) != node.name
            assert metric_steps(a, job["id"]) == list(range(100, 3001, 100))
            assert_same_weights(final_generator(a, done), reference.result(timeout=120))
        finally:
            node.start()


def test_jobs_whose_messages_were_lost_are_published_again(cluster: Cluster) -> None:
    """As if an API server died between writing a job and publishing it, or the broker lost
    the message: the job is queued in the store with no message anywhere."""
    from service.store import Store

    store = Store(cluster.env["CURVEGAN_DATABASE_URL"])
    try:
        ids = []
        for i, published in enumerate((False, True)):
            job, _ = store.create_job(
                job_id=f"job_lost{i}",
                name=None,
                config=TrainConfig(steps=300, seed=50 + i).to_dict(),
                step=0,
                resumed_from=None,
                idempotency_key=None,
                request_hash=None,
            )
            if published:  # "published" just now, but the message never reached a queue
                store.mark_published([job.id])
            ids.append(job.id)
    finally:
        store.dispose()
    with cluster.apis[1].client() as c:
        for job_id in ids:
            done = wait_final(cluster, c, job_id, timeout=60)
            assert done["state"] == "succeeded", f"{done}\n{cluster.logs()}"


def test_a_sweep_spreads_over_both_nodes_as_populations(cluster: Cluster) -> None:
    """CURVEGAN_SWEEP_SPLIT=2 (the cluster's two single-process nodes): each node takes half
    of the sweep's members as one population."""
    with cluster.apis[0].client() as a:
        r = a.post(
            "/v1/sweeps",
            json={"config": {"steps": 1500, "log_every": 100}, "vary": {"seed": [1, 2, 3, 4]}},
        )
        assert r.status_code == 202, r.text
        sweep_id = r.json()["id"]

        def members() -> list[dict]:
            return a.get("/v1/jobs", params={"sweep_id": sweep_id}).json()["items"]

        def final() -> list[dict] | None:
            ms = members()
            return ms if all(j["state"] in FINAL for j in ms) else None

        done = wait_until(final, 90, "the sweep final", cluster.logs)
        assert [j["state"] for j in done] == ["succeeded"] * 4, done  # type: ignore[union-attr]
        nodes = [node_of(j) for j in done]  # type: ignore[union-attr]
        # Usually 2 and 2. A node that has claimed a member but not yet its share of the
        # siblings can lose one to the other node's next message: 3 and 1 (seen once in CI,
        # under load). Both nodes train, and a node trains several members at once.
        assert sorted(nodes.count(n) for n in set(nodes)) in ([2, 2], [1, 3]), nodes
