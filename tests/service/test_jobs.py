"""/v1/jobs over real HTTP: create, run, list, metrics, idempotency, cancel, delete, checkpoint
now, resume, concurrency and the queue. Every job is tiny (a few hundred steps) or cancelled."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from gan_engine import TrainConfig
from tests.conftest import in_process_client
from tests.helpers import Server, assert_error, poll, wait_for_state

FINAL = {"succeeded", "failed", "cancelled"}
JOB_FIELDS = {
    "id",
    "name",
    "state",
    "config",
    "step",
    "steps",
    "progress",
    "metrics",
    "quality",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "latest_checkpoint",
    "resumed_from",
    "worker",
}
METRIC_KEYS = {"d_loss", "g_loss", "d_accuracy", "d_score"}
QUALITY_KEYS = {"in_band", "resid", "w1_a"}
ROW_KEYS = {"step"} | METRIC_KEYS | QUALITY_KEYS
# A job that would train for minutes: it is always cancelled.
LONG = {"steps": 1_000_000, "log_every": 50, "checkpoint_every": 0}


# ----------------------------------------------------------------------------- helpers


def parse_ts(value: Any, what: str = "timestamp") -> datetime:
    """An ISO 8601 timestamp in UTC (Z or +00:00)."""
    assert isinstance(value, str), f"{what} is not a string: {value!r}"
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AssertionError(f"{what} {value!r} is not ISO 8601: {exc}") from None
    offset = ts.utcoffset()
    assert offset is not None and offset.total_seconds() == 0, f"{what} {value!r} is not UTC"
    return ts


def create(
    client: httpx.Client,
    config: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    resume_from: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if config is not None:
        body["config"] = config
    if resume_from is not None:
        body["resume_from"] = resume_from
    r = client.post("/v1/jobs", json=body, headers=headers or {})
    assert r.status_code == 202, f"POST /v1/jobs {body} -> {r.status_code} {r.text[:500]}"
    return r.json()


def get_job(client: httpx.Client, job_id: str) -> dict:
    r = client.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 200, f"GET /v1/jobs/{job_id} -> {r.status_code} {r.text[:500]}"
    return r.json()


def wait_step(client: httpx.Client, job_id: str, step: int, timeout: float = 30.0) -> dict:
    """Polls until the job is running at ``step`` or later (it really trains)."""

    def there(job: dict) -> bool:
        if job["state"] == "running" and job["step"] >= step:
            return True
        assert job["state"] in {"queued", "running"}, f"job ended early: {job}"
        return False

    return poll(lambda: get_job(client, job_id), there, timeout, f"job {job_id} at step {step}")


def cancel_quietly(client: httpx.Client, *job_ids: str) -> None:
    """Frees worker slots at the end of a test, whatever state the jobs are in."""
    for job_id in job_ids:
        with contextlib.suppress(httpx.HTTPError):
            client.post(f"/v1/jobs/{job_id}/cancel")


def metric_steps(client: httpx.Client, job_id: str, **params: Any) -> list[int]:
    r = client.get(f"/v1/jobs/{job_id}/metrics", params=params)
    assert r.status_code == 200, f"metrics {params} -> {r.status_code} {r.text[:500]}"
    body = r.json()
    assert set(body) >= {"items"}, body
    for row in body["items"]:
        assert set(row) >= ROW_KEYS, f"metrics row lacks {ROW_KEYS - set(row)}: {row}"
    return [row["step"] for row in body["items"]]


def assert_job_shape(job: dict) -> None:
    missing = JOB_FIELDS - set(job)
    assert not missing, f"Job lacks fields {sorted(missing)}: {job}"
    assert isinstance(job["id"], str) and job["id"], job
    assert job["state"] in {"queued", "running"} | FINAL, job
    assert 0.0 <= job["progress"] <= 1.0, job
    parse_ts(job["created_at"], "created_at")
    for key in ("started_at", "finished_at"):
        if job[key] is not None:
            parse_ts(job[key], key)


# Four workers: tests here run jobs side by side.
SERVER_ENV = {"CURVEGAN_MAX_CONCURRENT_JOBS": "4"}


@pytest.fixture(scope="module")
def finished_job(module_server: Server) -> dict:
    """A 300-step job logged every 100 steps, run to the end once for several tests."""
    with module_server.client() as c:
        job = create(c, {"steps": 300, "log_every": 100, "seed": 7}, name="finished")
        done = wait_for_state(c, job["id"], FINAL, timeout=60)
        assert done["state"] == "succeeded", f"{done}\n{module_server.log()[-3000:]}"
        return done


# ----------------------------------------------------------------------------- create and run


def test_create_returns_202_location_and_a_complete_job(
    mc: httpx.Client, module_server: Server, wait_state: Callable[..., dict]
) -> None:
    body = {"name": "first", "config": {"steps": 300, "log_every": 100, "batch_size": 32}}
    r = mc.post("/v1/jobs", json=body)
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    job = r.json()
    assert_job_shape(job)
    assert r.headers.get("location") == f"/v1/jobs/{job['id']}", r.headers
    assert job["name"] == "first"
    assert job["state"] in {"queued", "running"}, job
    assert job["step"] == 0 and job["steps"] == 300, job
    assert job["progress"] == 0.0, job
    assert job["error"] is None and job["resumed_from"] is None, job
    assert job["finished_at"] is None, job
    if job["state"] == "queued":
        assert job["started_at"] is None, job
    # Nothing is logged or saved before the first step.
    assert job["metrics"] is None and job["quality"] is None, job
    assert job["latest_checkpoint"] is None, job

    # The config is complete: every engine field, defaults filled, the seed actually used.
    config = job["config"]
    defaults = TrainConfig().to_dict()
    assert set(config) == set(defaults), (
        f"config fields differ from the engine's: missing {sorted(set(defaults) - set(config))}, "
        f"extra {sorted(set(config) - set(defaults))}"
    )
    assert isinstance(config["seed"], int) and not isinstance(config["seed"], bool), config
    assert 0 <= config["seed"] < 2**63, config
    expected = {
        **defaults,
        "steps": 300,
        "log_every": 100,
        "batch_size": 32,
        "seed": config["seed"],
    }
    assert config == expected, f"config {config} != defaults with overrides {expected}"
    TrainConfig.from_dict(config)  # the engine accepts it as it is

    # The Location header leads to the same job.
    again = mc.get(r.headers["location"])
    assert again.status_code == 200 and again.json()["id"] == job["id"], again.text

    done = wait_state(mc, job["id"], FINAL, timeout=60)
    assert done["state"] == "succeeded", f"{done}\n{module_server.log()[-3000:]}"
    assert_job_shape(done)
    assert done["step"] == 300 and done["progress"] == 1.0, done
    assert done["config"] == config, "the config changed while the job ran"
    assert done["error"] is None, done
    assert isinstance(done["metrics"], dict) and set(done["metrics"]) >= METRIC_KEYS, done
    assert isinstance(done["quality"], dict) and set(done["quality"]) >= QUALITY_KEYS, done
    for key, value in {**done["metrics"], **done["quality"]}.items():
        assert isinstance(value, (int, float)), f"{key}={value!r}"
    created = parse_ts(done["created_at"], "created_at")
    started = parse_ts(done["started_at"], "started_at")
    finished = parse_ts(done["finished_at"], "finished_at")
    assert created <= started <= finished, done

    # The job's metrics are its last logged row.
    rows = mc.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    assert rows and rows[-1]["step"] == 300, rows
    for key in METRIC_KEYS:
        assert done["metrics"][key] == pytest.approx(rows[-1][key]), (key, done, rows[-1])
    for key in QUALITY_KEYS:
        assert done["quality"][key] == pytest.approx(rows[-1][key]), (key, done, rows[-1])

    # latest_checkpoint: the final checkpoint, at the last step, of this job.
    ckpt_id = done["latest_checkpoint"]
    assert isinstance(ckpt_id, str) and ckpt_id, done
    r = mc.get(f"/v1/checkpoints/{ckpt_id}")
    assert r.status_code == 200, r.text
    ckpt = r.json()
    assert ckpt["job_id"] == job["id"] and ckpt["step"] == 300, ckpt
    assert ckpt["source"] == "training", ckpt
    assert ckpt["config"] == config, ckpt
    parse_ts(ckpt["created_at"], "checkpoint created_at")


# ----------------------------------------------------------------------------- metrics


def test_metrics_every_logged_step_ascending(mc: httpx.Client, finished_job: dict) -> None:
    job_id = finished_job["id"]
    assert metric_steps(mc, job_id) == [100, 200, 300]
    assert metric_steps(mc, job_id, since_step=0) == [100, 200, 300]
    # 150 sits between logged steps, so "since" means the same inclusive or exclusive.
    assert metric_steps(mc, job_id, since_step=150) == [200, 300]
    assert metric_steps(mc, job_id, since_step=300) in ([], [300])
    assert metric_steps(mc, job_id, since_step=1000) == []
    assert metric_steps(mc, job_id, limit=1) == [100]
    assert metric_steps(mc, job_id, limit=2) == [100, 200]
    assert metric_steps(mc, job_id, since_step=150, limit=1) == [200]
    rows = mc.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
    for row in rows:
        for key in ROW_KEYS - {"step"}:
            assert isinstance(row[key], (int, float)), row
        assert row["d_score"] == pytest.approx(-row["d_loss"]), row
        assert 0.0 <= row["d_accuracy"] <= 1.0, row
        assert 0.0 <= row["in_band"] <= 1.0, row


def test_metrics_bad_query_is_422(mc: httpx.Client, finished_job: dict) -> None:
    for params in ({"since_step": -1}, {"limit": 0}, {"limit": "many"}):
        r = mc.get(f"/v1/jobs/{finished_job['id']}/metrics", params=params)
        assert_error(r, 422)


# ----------------------------------------------------------------------------- list


def test_two_jobs_run_at_once_and_list_newest_first(
    mc: httpx.Client, module_server: Server, wait_state: Callable[..., dict]
) -> None:
    """Two jobs train at once (the module's server has four slots, the other tests leave them
    free); then the list, its filter and pages. The server is shared: each count is the one
    before the test plus what it made, and the newest jobs are the test's own."""
    states = ("queued", "running", "succeeded", "failed", "cancelled")

    def totals() -> dict[str, int]:
        counts = {s: mc.get("/v1/jobs", params={"state": s}).json()["total"] for s in states}
        r = mc.get("/v1/jobs")
        assert r.status_code == 200, r.text
        counts["all"] = r.json()["total"]
        return counts

    before = totals()
    a = create(mc, LONG, name="a")
    b = create(mc, LONG, name="b")
    try:

        def both() -> list[tuple[str, int]]:
            return [(j["state"], j["step"]) for j in (get_job(mc, a["id"]), get_job(mc, b["id"]))]

        seen = poll(
            both,
            lambda jobs: all(state == "running" and step > 0 for state, step in jobs),
            30,
            "both jobs training at once",
            logs=lambda: module_server.log()[-3000:],
        )
        # Both keep going: neither waits for the other.
        poll(
            both,
            lambda jobs: all(now > then for (_, now), (_, then) in zip(jobs, seen, strict=True)),
            10,
            f"both jobs training on past steps {seen}",
        )

        total = before["all"] + 2
        page = mc.get("/v1/jobs").json()
        assert page["total"] == total, page
        ids = [j["id"] for j in page["items"]]
        assert ids[:2] == [b["id"], a["id"]], f"not newest first: {ids}"
        for job in page["items"][:2]:
            assert_job_shape(job)
        running = mc.get("/v1/jobs", params={"state": "running"}).json()
        assert running["total"] == before["running"] + 2, running
        assert [j["id"] for j in running["items"]][:2] == [b["id"], a["id"]], running

        # One cancelled, one running: the state filter tells them apart.
        assert mc.post(f"/v1/jobs/{a['id']}/cancel").status_code == 202
        wait_state(mc, a["id"], FINAL, timeout=10)
        running = mc.get("/v1/jobs", params={"state": "running"}).json()
        assert running["total"] == before["running"] + 1, running
        assert [j["id"] for j in running["items"]][:1] == [b["id"]], running
        assert a["id"] not in [j["id"] for j in running["items"]], running
        cancelled = mc.get("/v1/jobs", params={"state": "cancelled"}).json()
        assert cancelled["total"] == before["cancelled"] + 1, cancelled
        assert cancelled["items"][0]["id"] == a["id"], cancelled
        assert b["id"] not in [j["id"] for j in cancelled["items"]], cancelled
        for state in ("queued", "succeeded", "failed"):
            other = mc.get("/v1/jobs", params={"state": state}).json()
            assert other["total"] == before[state], (state, other)
            assert not {a["id"], b["id"]} & {j["id"] for j in other["items"]}, (state, other)

        p1 = mc.get("/v1/jobs", params={"limit": 1}).json()
        assert p1["total"] == total and [j["id"] for j in p1["items"]] == [b["id"]], p1
        p2 = mc.get("/v1/jobs", params={"limit": 1, "offset": 1}).json()
        assert p2["total"] == total and [j["id"] for j in p2["items"]] == [a["id"]], p2
        p3 = mc.get("/v1/jobs", params={"limit": 5, "offset": 1}).json()
        assert p3["total"] == total and [j["id"] for j in p3["items"]][:1] == [a["id"]], p3
        assert len(p3["items"]) == min(5, total - 1), p3
        p4 = mc.get("/v1/jobs", params={"offset": total + 10}).json()
        assert p4["total"] == total and p4["items"] == [], p4
        n_running = before["running"] + 1
        sub = mc.get("/v1/jobs", params={"state": "running", "limit": 1, "offset": n_running})
        assert sub.json() == {"items": [], "total": n_running}, sub.json()

        assert_error(mc.get("/v1/jobs", params={"state": "bogus"}), 422)
        assert_error(mc.get("/v1/jobs", params={"limit": 0}), 422)
        assert_error(mc.get("/v1/jobs", params={"offset": -1}), 422)
    finally:
        cancel_quietly(mc, a["id"], b["id"])
    for job in (a, b):
        assert wait_state(mc, job["id"], FINAL, timeout=10)["state"] == "cancelled"


# ----------------------------------------------------------------------------- a full slot


@pytest.fixture(scope="class")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The app in this process with one worker slot and two queue places, its slot taken by a
    long job: new jobs stay queued, so these tests start no worker process until the last one
    (FIFO). What is tested here is the API and its queue, not the HTTP server."""
    data_dir = tmp_path_factory.mktemp("blocked-app") / "data"
    with in_process_client(data_dir, max_concurrent_jobs=1, max_queued_jobs=2) as c:
        blocker = create(c, LONG, name="blocker")
        wait_for_state(c, blocker["id"], {"running"}, timeout=30)
        yield c
        cancel_quietly(c, blocker["id"])
        wait_for_state(c, blocker["id"], FINAL, timeout=10)


def _jobs_named(client: httpx.Client, name: str) -> list[dict]:
    page = client.get("/v1/jobs", params={"limit": 1000}).json()
    return [j for j in page["items"] if j["name"] == name]


class TestWhileTheOnlySlotIsTaken:
    """New jobs stay queued here; the class-scoped app goes away after the class."""

    def test_seeds_kept_when_given_drawn_when_not(self, blocked: httpx.Client) -> None:
        c = blocked
        a = create(c, {"steps": 200, "seed": 12345})
        cancel_quietly(c, a["id"])
        assert a["config"]["seed"] == 12345, a
        b = create(c, {"steps": 200})
        cancel_quietly(c, b["id"])
        d = create(c, {"steps": 200})
        cancel_quietly(c, d["id"])
        for job in (b, d):
            seed = job["config"]["seed"]
            assert isinstance(seed, int) and 0 <= seed < 2**63, job
        assert b["config"]["seed"] != d["config"]["seed"], "two jobs drew the same seed"

    def test_idempotency_key_same_body_returns_the_same_job(self, blocked: httpx.Client) -> None:
        c = blocked
        name = f"idem-{uuid.uuid4().hex[:8]}"
        key = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"name": name, "config": {"steps": 200, "log_every": 100}}
        r1 = c.post("/v1/jobs", json=body, headers=key)
        assert r1.status_code == 202, r1.text
        try:
            r2 = c.post("/v1/jobs", json=body, headers=key)
            assert r2.status_code in (200, 202), f"replay -> {r2.status_code} {r2.text}"
            assert r2.json()["id"] == r1.json()["id"], (r1.json(), r2.json())
            assert r2.json()["config"]["seed"] == r1.json()["config"]["seed"]
            if r2.status_code == 202:
                assert r2.headers.get("location") == f"/v1/jobs/{r1.json()['id']}", r2.headers
            jobs = _jobs_named(c, name)
            assert len(jobs) == 1, f"{len(jobs)} jobs for one idempotency key: {jobs}"
        finally:
            cancel_quietly(c, r1.json()["id"])
        # Replayed after the job was cancelled: still that job, not a new one.
        r4 = c.post("/v1/jobs", json=body, headers=key)
        assert r4.status_code in (200, 202) and r4.json()["id"] == r1.json()["id"], r4.text
        assert r4.json()["state"] == "cancelled", r4.json()
        # Another key with the same body is another job.
        r3 = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r3.status_code == 202, r3.text
        cancel_quietly(c, r3.json()["id"])
        assert r3.json()["id"] != r1.json()["id"]
        assert len(_jobs_named(c, name)) == 2

    def test_idempotency_key_other_body_is_409(self, blocked: httpx.Client) -> None:
        c = blocked
        name = f"idem-{uuid.uuid4().hex[:8]}"
        key = {"Idempotency-Key": uuid.uuid4().hex}
        r1 = c.post("/v1/jobs", json={"name": name, "config": {"steps": 200}}, headers=key)
        assert r1.status_code == 202, r1.text
        cancel_quietly(c, r1.json()["id"])
        r2 = c.post("/v1/jobs", json={"name": name, "config": {"steps": 300}}, headers=key)
        assert_error(r2, 409, "conflict")
        r3 = c.post("/v1/jobs", json={"name": name + "x", "config": {"steps": 200}}, headers=key)
        assert_error(r3, 409, "conflict")
        assert len(_jobs_named(c, name)) == 1
        assert _jobs_named(c, name + "x") == []

    def test_idempotency_key_matches_the_request_meaning_not_its_spelling(
        self, blocked: httpx.Client
    ) -> None:
        c = blocked
        name = f"idem-{uuid.uuid4().hex[:8]}"
        key = {"Idempotency-Key": uuid.uuid4().hex}
        r1 = c.post("/v1/jobs", json={"name": name}, headers=key)
        assert r1.status_code == 202, r1.text
        cancel_quietly(c, r1.json()["id"])
        same = [
            {"name": name, "preset": "tutorial"},
            {"name": name, "config": {}},
            {"name": name, "config": {"steps": 10_000, "lr_g": 1e-4}, "resume_from": None},
        ]
        for body in same:
            r = c.post("/v1/jobs", json=body, headers=key)
            assert r.status_code in (200, 202), f"{body} -> {r.status_code} {r.text}"
            assert r.json()["id"] == r1.json()["id"], body
        # Another meaning under the same key is still refused: another preset, another seed.
        for body in (
            {"name": name, "preset": "recommended"},
            {"name": name, "config": {"seed": 1}},
        ):
            assert_error(c.post("/v1/jobs", json=body, headers=key), 409, "conflict")
        assert len(_jobs_named(c, name)) == 1

    def test_delete_or_checkpoint_queued_job_is_409_cancel_is_immediate(
        self, blocked: httpx.Client
    ) -> None:
        c = blocked
        job = create(c, LONG, name="queued")
        try:
            assert get_job(c, job["id"])["state"] == "queued"
            assert_error(c.delete(f"/v1/jobs/{job['id']}"), 409, "conflict")
            assert_error(c.post(f"/v1/jobs/{job['id']}/checkpoints"), 409, "conflict")
            # A queued job is cancelled at once: it has no worker to wait for.
            r = c.post(f"/v1/jobs/{job['id']}/cancel")
            assert r.status_code == 202, r.text
            assert r.json()["state"] == "cancelled", r.json()
            got = get_job(c, job["id"])
            assert got["state"] == "cancelled" and got["finished_at"] is not None, got
            assert c.delete(f"/v1/jobs/{job['id']}").status_code == 204
            assert_error(c.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
        finally:
            cancel_quietly(c, job["id"])

    def test_queue_over_limit_is_429_with_retry_after(self, blocked: httpx.Client) -> None:
        c = blocked
        total_before = c.get("/v1/jobs").json()["total"]
        queued = create(c, LONG, name="queued")
        queued2 = create(c, LONG, name="queued2")
        ids = [queued["id"], queued2["id"]]
        try:
            r = c.post("/v1/jobs", json={"name": "refused", "config": LONG})
            if r.status_code == 202:
                ids.append(r.json()["id"])
            err = assert_error(r, 429, "too_many_jobs")
            retry = r.headers.get("retry-after")
            assert retry is not None, f"429 without Retry-After: {r.headers}"
            assert retry.isdigit() and int(retry) >= 1, f"Retry-After {retry!r}"
            assert err["message"], err
            page = c.get("/v1/jobs").json()
            assert page["total"] == total_before + 2, f"the refused job was stored: {page}"
            # A free queue place accepts again.
            assert c.post(f"/v1/jobs/{queued['id']}/cancel").status_code == 202
            again = c.post("/v1/jobs", json={"name": "accepted", "config": LONG})
            assert again.status_code == 202, f"{again.status_code} {again.text}"
            ids.append(again.json()["id"])
        finally:
            cancel_quietly(c, *ids)

    def test_first_in_first_out(self, blocked: httpx.Client, wait_state: Callable) -> None:
        """Last in this class: it ends the blocker. Queued jobs start one at a time, oldest
        first, each after the one before it finished."""
        c = blocked
        first = c.get("/v1/jobs", params={"state": "running"}).json()["items"][0]
        assert first["name"] == "blocker", first
        small = {"steps": 200, "log_every": 100}
        second = create(c, small, name="second")
        third = create(c, small, name="third")
        try:
            for _ in range(5):  # while the first trains, the others wait
                for job in (second, third):
                    j = get_job(c, job["id"])
                    assert j["state"] == "queued", f"{j['name']} left the queue early: {j}"
                    assert j["started_at"] is None and j["step"] == 0, j
                time.sleep(0.1)
            assert c.post(f"/v1/jobs/{first['id']}/cancel").status_code == 202
            a = wait_state(c, first["id"], FINAL, timeout=10)
            b = wait_state(c, second["id"], FINAL, timeout=60)
            cc = wait_state(c, third["id"], FINAL, timeout=60)
        finally:
            cancel_quietly(c, second["id"], third["id"])
        assert (a["state"], b["state"], cc["state"]) == ("cancelled", "succeeded", "succeeded"), (
            f"{a}\n{b}\n{cc}"
        )
        assert parse_ts(b["started_at"]) >= parse_ts(a["finished_at"]), (a, b)
        assert parse_ts(cc["started_at"]) >= parse_ts(b["finished_at"]), (b, cc)


# ----------------------------------------------------------------------------- cancel


def test_cancel_running_job_ends_cancelled_with_final_checkpoint(
    mc: httpx.Client, module_server: Server, wait_state: Callable[..., dict]
) -> None:
    job = create(mc, LONG, name="to-cancel")
    try:
        wait_step(mc, job["id"], 50)
        t0 = time.monotonic()
        r = mc.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.status_code == 202, f"{r.status_code} {r.text}"
        assert r.json()["id"] == job["id"], r.json()
        assert r.json()["state"] in {"running", "cancelled"}, r.json()
        done = wait_state(mc, job["id"], FINAL, timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        cancel_quietly(mc, job["id"])
    assert done["state"] == "cancelled", f"{done}\n{module_server.log()[-3000:]}"
    assert elapsed < 3.0, f"cancel took {elapsed:.2f}s (the contract says within a second)"
    assert 50 <= done["step"] < LONG["steps"], done
    assert done["progress"] < 1.0, done
    assert done["finished_at"] is not None, done
    parse_ts(done["finished_at"], "finished_at")
    ckpt_id = done["latest_checkpoint"]
    assert ckpt_id is not None, f"no final checkpoint after cancel: {done}"
    ckpt = mc.get(f"/v1/checkpoints/{ckpt_id}").json()
    assert ckpt["job_id"] == job["id"], ckpt
    assert ckpt["step"] == done["step"], f"final checkpoint at {ckpt['step']}, job at {done}"
    listed = mc.get("/v1/checkpoints", params={"job_id": job["id"]}).json()
    assert ckpt_id in [c["id"] for c in listed["items"]], listed

    # Cancelling again, now that the job is final, is a conflict.
    assert_error(mc.post(f"/v1/jobs/{job['id']}/cancel"), 409, "conflict")


def test_cancel_final_job_is_409(mc: httpx.Client, finished_job: dict) -> None:
    assert_error(mc.post(f"/v1/jobs/{finished_job['id']}/cancel"), 409, "conflict")
    assert get_job(mc, finished_job["id"])["state"] == "succeeded"


# ----------------------------------------------------------------------------- delete


def test_delete_running_is_409_final_is_204_and_checkpoints_stay(
    mc: httpx.Client, wait_state: Callable[..., dict]
) -> None:
    job = create(mc, LONG, name="to-delete")
    try:
        wait_state(mc, job["id"], {"running"}, timeout=30)
        assert_error(mc.delete(f"/v1/jobs/{job['id']}"), 409, "conflict")
        assert get_job(mc, job["id"])["state"] == "running"
        wait_step(mc, job["id"], 50)
        assert mc.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
        done = wait_state(mc, job["id"], FINAL, timeout=10)
    finally:
        cancel_quietly(mc, job["id"])
    assert done["state"] == "cancelled", done
    before = mc.get("/v1/checkpoints", params={"job_id": job["id"]}).json()
    assert before["total"] >= 1, before

    r = mc.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 204, f"{r.status_code} {r.text}"
    assert r.content == b"", r.content
    assert_error(mc.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
    assert_error(mc.get(f"/v1/jobs/{job['id']}/metrics"), 404, "not_found")
    assert_error(mc.delete(f"/v1/jobs/{job['id']}"), 404, "not_found")
    assert job["id"] not in [j["id"] for j in mc.get("/v1/jobs").json()["items"]]

    after = mc.get("/v1/checkpoints", params={"job_id": job["id"]}).json()
    assert after["total"] == before["total"], (before, after)
    assert {c["id"] for c in after["items"]} == {c["id"] for c in before["items"]}
    for ckpt in after["items"]:
        assert ckpt["job_id"] == job["id"], ckpt
        r = mc.get(f"/v1/checkpoints/{ckpt['id']}/file")
        assert r.status_code == 200 and len(r.content) == ckpt["size_bytes"], r.status_code


# ----------------------------------------------------------------------------- save now


def test_checkpoint_now_on_running_job(mc: httpx.Client, wait_state: Callable[..., dict]) -> None:
    job = create(mc, LONG, name="save-now")
    try:
        wait_step(mc, job["id"], 50)
        r = mc.post(f"/v1/jobs/{job['id']}/checkpoints")
        assert r.status_code == 201, f"{r.status_code} {r.text}"
        ckpt = r.json()
        assert ckpt["job_id"] == job["id"], ckpt
        assert ckpt["source"] == "training", ckpt
        assert ckpt["step"] >= 50, ckpt
        assert isinstance(ckpt["id"], str) and ckpt["id"], ckpt
        assert ckpt["size_bytes"] > 0 and len(ckpt["sha256"]) == 64, ckpt
        parse_ts(ckpt["created_at"], "checkpoint created_at")
        got = mc.get(f"/v1/checkpoints/{ckpt['id']}")
        assert got.status_code == 200 and got.json()["id"] == ckpt["id"], got.text
        listed = mc.get("/v1/checkpoints", params={"job_id": job["id"]}).json()
        assert ckpt["id"] in [c["id"] for c in listed["items"]], listed
        assert get_job(mc, job["id"])["state"] == "running"
        mc.post(f"/v1/jobs/{job['id']}/cancel")
        done = wait_state(mc, job["id"], FINAL, timeout=10)
        assert done["state"] == "cancelled", done
        # A final job cannot save now.
        assert_error(mc.post(f"/v1/jobs/{job['id']}/checkpoints"), 409, "conflict")
    finally:
        cancel_quietly(mc, job["id"])


# ----------------------------------------------------------------------------- unknown ids


def test_unknown_job_id_is_404_json(mc: httpx.Client) -> None:
    missing = "job_doesnotexist"
    calls = [
        ("GET", f"/v1/jobs/{missing}", None),
        ("GET", f"/v1/jobs/{missing}/metrics", None),
        ("GET", f"/v1/jobs/{missing}/events", None),
        ("POST", f"/v1/jobs/{missing}/cancel", None),
        ("DELETE", f"/v1/jobs/{missing}", None),
        ("POST", f"/v1/jobs/{missing}/checkpoints", None),
        ("POST", f"/v1/jobs/{missing}/samples", {"n": 1}),
    ]
    for method, path, body in calls:
        r = mc.request(method, path, json=body)
        err = assert_error(r, 404, "not_found")
        assert missing in err["message"] or "job" in err["message"].lower(), (path, err)


# ----------------------------------------------------------------------------- concurrency


# ----------------------------------------------------------------------------- resume


def test_resume_from_checkpoint(
    mc: httpx.Client,
    module_server: Server,
    finished_job: dict,
    wait_state: Callable[..., dict],
) -> None:
    ckpt_id = finished_job["latest_checkpoint"]
    base = mc.get(f"/v1/checkpoints/{ckpt_id}").json()
    assert base["step"] == 300, base
    job = create(mc, {"steps": 500, "log_every": 100}, name="resumed", resume_from=ckpt_id)
    assert job["resumed_from"] == ckpt_id, job
    assert job["step"] == 300, f"a resumed job starts at the checkpoint's step: {job}"
    assert job["steps"] == 500, job
    assert job["config"] == {**base["config"], "steps": 500, "log_every": 100}, (
        job["config"],
        base["config"],
    )
    assert 0.0 <= job["progress"] < 1.0, job
    done = wait_state(mc, job["id"], FINAL, timeout=60)
    assert done["state"] == "succeeded", f"{done}\n{module_server.log()[-3000:]}"
    assert done["step"] == 500 and done["progress"] == 1.0, done
    assert done["resumed_from"] == ckpt_id, done
    steps = metric_steps(mc, job["id"])
    assert [s for s in steps if s > 300] == [400, 500], steps
    assert steps == sorted(steps), steps
    final = mc.get(f"/v1/checkpoints/{done['latest_checkpoint']}").json()
    assert final["step"] == 500 and final["job_id"] == job["id"], final
    # The source checkpoint is untouched.
    assert mc.get(f"/v1/checkpoints/{ckpt_id}").json() == base


def test_resume_from_unknown_checkpoint_is_json_error(mc: httpx.Client) -> None:
    r = mc.post("/v1/jobs", json={"resume_from": "ck_doesnotexist", "config": {"steps": 500}})
    assert r.status_code in (404, 422), f"{r.status_code} {r.text}"
    assert_error(r, r.status_code)


def test_resume_refuses_changed_fields_and_too_few_steps(
    mc: httpx.Client, finished_job: dict
) -> None:
    ckpt_id = finished_job["latest_checkpoint"]
    err = assert_error(
        mc.post("/v1/jobs", json={"resume_from": ckpt_id, "config": {"steps": 500, "hidden": 7}}),
        422,
        "validation_error",
    )
    assert "hidden" in err["message"] or err.get("field") == "config.hidden", err
    err = assert_error(
        mc.post("/v1/jobs", json={"resume_from": ckpt_id, "config": {"steps": 300}}),
        422,
        "validation_error",
    )
    assert "steps" in err["message"], err


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("preset", ["recommended", "fast"])
def test_preset_gives_its_recipe_with_overrides(
    mc: httpx.Client, wait_state: Callable[..., dict], preset: str
) -> None:
    body = {"preset": preset, "config": {"steps": 200, "log_every": 100, "seed": 3}}
    r = mc.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    # The job's config is complete: the recipe with the request's fields on top.
    expected = TrainConfig.from_preset(preset, steps=200, log_every=100, seed=3)
    assert job["config"] == expected.to_dict(), job["config"]
    done = wait_state(mc, job["id"], FINAL, timeout=60)
    assert done["state"] == "succeeded" and done["quality"] is not None, done


def test_preset_tutorial_is_the_default(mc: httpx.Client) -> None:
    named = create_with(mc, {"preset": "tutorial", "config": {"steps": 1, "seed": 5}})
    plain = create_with(mc, {"config": {"steps": 1, "seed": 5}})
    assert named["config"] == plain["config"] == TrainConfig(steps=1, seed=5).to_dict()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preset": "fastest"}, "preset"),
        ({"preset": 3}, "preset"),
        ({"config": {"preset": "recommended"}}, "config.preset"),
        ({"preset": "recommended", "config": {"batch_size": 0}}, "config.batch_size"),
    ],
)
def test_bad_presets_are_422_naming_the_field(mc: httpx.Client, body: dict, field: str) -> None:
    err = assert_error(mc.post("/v1/jobs", json=body), 422, "validation_error")
    assert err.get("field") == field, err
    if field == "preset" and body["preset"] == "fastest":
        assert "tutorial, recommended" in err["message"], err


def test_preset_with_resume_from_is_422(mc: httpx.Client, finished_job: dict) -> None:
    body = {"preset": "recommended", "resume_from": finished_job["latest_checkpoint"]}
    err = assert_error(mc.post("/v1/jobs", json=body), 422, "validation_error")
    assert err.get("field") == "preset" and "resume_from" in err["message"], err


def create_with(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, f"POST /v1/jobs {body} -> {r.status_code} {r.text[:500]}"
    return r.json()
