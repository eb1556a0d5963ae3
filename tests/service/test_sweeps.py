"""/v1/sweeps over real HTTP: grids and explicit member lists expanded into member jobs, the
422s naming the field at fault, limits, idempotency, a small sweep trained to its best member,
its event stream, cancel and delete. Every member is tiny (300 steps) or cancelled."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gan_engine import TrainConfig
from tests.conftest import AppClient
from tests.helpers import assert_error, poll

FINAL = {"succeeded", "failed", "cancelled"}
SMALL = {"steps": 300, "log_every": 100, "checkpoint_every": 0}
# Members that would train for minutes: always cancelled.
LONG = {"steps": 1_000_000, "log_every": 50, "checkpoint_every": 0}
SWEEP_FIELDS = {
    "id",
    "name",
    "state",
    "created_at",
    "best_by",
    "preset",
    "config",
    "vary",
    "member_count",
    "counts",
    "progress",
    "members",
    "best",
}
MEMBER_FIELDS = {"job_id", "member_index", "values", "state", "step", "steps", "progress"}


# ----------------------------------------------------------------------------- helpers
def post_sweep(client: httpx.Client, body: dict[str, Any], **headers: str) -> dict:
    r = client.post("/v1/sweeps", json=body, headers=headers)
    assert r.status_code == 202, f"POST /v1/sweeps {body} -> {r.status_code} {r.text[:500]}"
    sweep = r.json()
    assert r.headers.get("location") == f"/v1/sweeps/{sweep['id']}", r.headers
    assert set(sweep) >= SWEEP_FIELDS, sweep
    return sweep


def get_sweep(client: httpx.Client, sweep_id: str) -> dict:
    r = client.get(f"/v1/sweeps/{sweep_id}")
    assert r.status_code == 200, f"GET /v1/sweeps/{sweep_id} -> {r.status_code} {r.text[:500]}"
    return r.json()


def wait_sweep(
    client: httpx.Client, sweep_id: str, until: Callable[[dict], bool], timeout: float = 120.0
) -> dict:
    return poll(
        lambda: get_sweep(client, sweep_id), until, timeout, f"sweep {sweep_id}", interval=0.1
    )


def member_jobs(client: httpx.Client, sweep_id: str) -> list[dict]:
    r = client.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 1000})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"]), page
    return sorted(page["items"], key=lambda j: j["member_index"])


def job_total(client: httpx.Client) -> int:
    return int(client.get("/v1/jobs", params={"limit": 1}).json()["total"])


def sse_frames(client: httpx.Client, path: str, timeout: float = 120.0) -> list[tuple[str, Any]]:
    """Reads the stream until the server closes it; (event, data) per frame, in order."""
    frames: list[tuple[str, Any]] = []
    with client.stream("GET", path, timeout=httpx.Timeout(timeout, read=30.0)) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        event, data = "message", []
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif line == "" and data:
                frames.append((event, json.loads("\n".join(data))))
                event, data = "message", []
    return frames


@pytest.fixture(autouse=True)
def _cancel_leftovers(mc: httpx.Client) -> Iterator[None]:
    """Frees the module server's worker slots after each test, whatever it left running."""
    yield
    for sweep in mc.get("/v1/sweeps", params={"limit": 1000}).json()["items"]:
        if sweep["state"] not in FINAL:
            with contextlib.suppress(httpx.HTTPError):
                mc.post(f"/v1/sweeps/{sweep['id']}/cancel")


# ----------------------------------------------------------------------------- expansion
def test_grid_expands_into_one_job_per_combination(mc: httpx.Client) -> None:
    name = f"grid-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "config": LONG, "vary": {"seed": [1, 2], "lr_g": [1e-4, 3e-4]}}
    sweep = post_sweep(mc, body)
    assert sweep["member_count"] == 4 and sweep["best_by"] == "w1_a", sweep
    assert sweep["preset"] == "tutorial" and sweep["config"] == LONG, sweep
    assert sweep["vary"] == body["vary"], sweep
    # Fields in sorted order (lr_g, then seed), values in the given order.
    expected = [
        {"lr_g": 1e-4, "seed": 1},
        {"lr_g": 1e-4, "seed": 2},
        {"lr_g": 3e-4, "seed": 1},
        {"lr_g": 3e-4, "seed": 2},
    ]
    assert [m["values"] for m in sweep["members"]] == expected, sweep["members"]
    assert [m["member_index"] for m in sweep["members"]] == [0, 1, 2, 3]
    for member in sweep["members"]:
        assert set(member) >= MEMBER_FIELDS, member
    jobs = member_jobs(mc, sweep["id"])
    assert [j["id"] for j in jobs] == [m["job_id"] for m in sweep["members"]]
    for job, values in zip(jobs, expected, strict=True):
        assert job["sweep_id"] == sweep["id"] and job["name"] == name, job
        want = TrainConfig.from_preset("tutorial", **{**LONG, **values}).to_dict()
        assert job["config"] == want, job
    # The unfiltered list holds them too, and other jobs are no members.
    assert {j["id"] for j in jobs} <= {
        j["id"] for j in mc.get("/v1/jobs", params={"limit": 1000}).json()["items"]
    }
    solo = mc.post("/v1/jobs", json={"config": LONG}).json()
    mc.post(f"/v1/jobs/{solo['id']}/cancel")
    assert solo["sweep_id"] is None and solo["member_index"] is None, solo
    assert len(member_jobs(mc, sweep["id"])) == 4
    assert member_jobs(mc, "sweep_none") == []


def test_explicit_members_override_the_base_and_draw_missing_seeds(mc: httpx.Client) -> None:
    base = {**LONG, "hidden": 32}
    members = [{"hidden": 16, "seed": 7}, {"lr_d": 3e-4}, {}]
    sweep = post_sweep(
        mc, {"preset": "fast", "config": base, "members": members, "best_by": "in_band"}
    )
    assert sweep["vary"] is None and sweep["preset"] == "fast" and sweep["best_by"] == "in_band"
    assert [m["values"] for m in sweep["members"]] == members
    jobs = member_jobs(mc, sweep["id"])
    assert len(jobs) == 3
    seeds = [j["config"]["seed"] for j in jobs]
    assert seeds[0] == 7
    for seed in seeds[1:]:
        assert isinstance(seed, int) and 0 <= seed < 2**63, seeds
    assert seeds[1] != seeds[2], "two members drew the same seed"
    for job, member, seed in zip(jobs, members, seeds, strict=True):
        want = TrainConfig.from_preset("fast", **{**base, **member, "seed": seed}).to_dict()
        assert job["config"] == want, job


# ----------------------------------------------------------------------------- refusals
BAD = {
    "neither": ({}, "vary"),
    "both": ({"vary": {"seed": [1]}, "members": [{}]}, "vary"),
    "empty grid": ({"vary": {}}, "vary"),
    "empty values": ({"vary": {"seed": []}}, "vary.seed"),
    "values not a list": ({"vary": {"seed": 3}}, "vary.seed"),
    "bad grid value": ({"vary": {"lr_g": [1e-4, -1.0]}}, "vary.lr_g.1"),
    "unknown grid field": ({"vary": {"bogus": [1]}}, "vary.bogus"),
    "preset in grid": ({"vary": {"preset": ["fast"]}}, "vary.preset"),
    "empty list": ({"members": []}, "members"),
    "bad member value": ({"members": [{}, {}, {}, {"hidden": 0}]}, "members.3.hidden"),
    "unknown member field": ({"members": [{}, {"bogus": 1}]}, "members.1.bogus"),
    "preset in member": ({"members": [{"preset": "fast"}]}, "members.0.preset"),
    "resume_from in member": ({"members": [{"resume_from": "ck"}]}, "members.0.resume_from"),
    "member not an object": ({"members": [{}, 3]}, "members.1"),
    "bad base value": ({"config": {"steps": -1}, "vary": {"seed": [1]}}, "config.steps"),
    "preset in base": ({"config": {"preset": "fast"}, "vary": {"seed": [1]}}, "config.preset"),
    "unknown preset": ({"preset": "best", "vary": {"seed": [1]}}, "preset"),
    "unknown best_by": ({"best_by": "luck", "vary": {"seed": [1]}}, "best_by"),
    "resume_from": ({"resume_from": "ck", "vary": {"seed": [1]}}, "resume_from"),
    "huge grid": ({"vary": {"seed": list(range(1000)), "lr_g": [1e-4] * 1000}}, "vary"),
    "grid over 256": ({"vary": {"seed": list(range(257))}}, "vary"),
}


@pytest.mark.parametrize(("body", "field"), BAD.values(), ids=BAD.keys())
def test_bad_sweeps_are_422_naming_the_field(
    mc: httpx.Client, body: dict[str, Any], field: str
) -> None:
    before = job_total(mc)
    err = assert_error(mc.post("/v1/sweeps", json=body), 422, "validation_error")
    assert err["field"] == field, err
    assert err["message"].startswith(f"{field}:"), err
    assert job_total(mc) == before, "a refused sweep queued jobs"


def test_bad_value_message_names_the_range(mc: httpx.Client) -> None:
    err = assert_error(mc.post("/v1/sweeps", json={"vary": {"lr_g": [1e-4, -1.0]}}), 422)
    assert "must be in" in err["message"] and "-1" in err["message"], err
    huge = {"vary": {"seed": list(range(1000)), "lr_g": [1e-4] * 1000}}
    err = assert_error(mc.post("/v1/sweeps", json=huge), 422)
    assert "1000000" in err["message"] and "256" in err["message"], err


def test_member_and_queue_limits(make_app_client: Callable[..., AppClient]) -> None:
    # The API's own limits: in process, with an empty store of its own and no worker (the
    # sweep that fits stays queued until it is cancelled).
    c = make_app_client(max_sweep_members=3, max_queued_jobs=2, workers=False)
    for body, field in [
        ({"vary": {"seed": [1, 2], "lr_g": [1e-4, 2e-4]}}, "vary"),
        ({"members": [{}, {}, {}, {}]}, "members"),
    ]:
        err = assert_error(c.post("/v1/sweeps", json=body), 422, "validation_error")
        assert err["field"] == field and "at most 3" in err["message"], err
    # Three members fit the member limit but not two queue places: none is queued.
    r = c.post("/v1/sweeps", json={"config": LONG, "vary": {"seed": [1, 2, 3]}})
    assert_error(r, 429, "too_many_jobs")
    assert int(r.headers["retry-after"]) > 0, r.headers
    assert job_total(c) == 0
    fits = post_sweep(c, {"config": LONG, "vary": {"seed": [1, 2]}})
    c.post(f"/v1/sweeps/{fits['id']}/cancel")
    assert job_total(c) == 2


def test_idempotency_key(mc: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"name": "idem", "config": LONG, "vary": {"seed": [1, 2]}}
    first = post_sweep(mc, body, **key)
    before = job_total(mc)
    again = post_sweep(mc, body, **key)
    assert again["id"] == first["id"], (first, again)
    # The same meaning spelled as a member list (and the preset named) is the same sweep.
    listed = {
        "name": "idem",
        "preset": "tutorial",
        "config": LONG,
        "members": [{"seed": 1}, {"seed": 2}],
    }
    assert post_sweep(mc, listed, **key)["id"] == first["id"]
    assert job_total(mc) == before
    other = {**body, "vary": {"seed": [1, 3]}}
    err = assert_error(mc.post("/v1/sweeps", json=other, headers=key), 409, "conflict")
    assert err["field"] == "Idempotency-Key" and first["id"] in err["message"], err
    assert job_total(mc) == before
    assert post_sweep(mc, body, **{"Idempotency-Key": uuid.uuid4().hex})["id"] != first["id"]


# ----------------------------------------------------------------------------- a real sweep
def test_small_sweep_succeeds_with_its_best_member_and_streams(mc: httpx.Client) -> None:
    # Batch 1024: ~2 s of training, so the 0.2 s polls see progress between the first frame
    # and the last (at batch 64 the population trains 300 steps within one poll).
    config = {**SMALL, "batch_size": 1024}
    sweep = post_sweep(mc, {"name": "real", "config": config, "vary": {"seed": [1, 2, 3]}})
    frames = sse_frames(mc, f"/v1/sweeps/{sweep['id']}/events")
    assert frames and all(event == "sweep" for event, _ in frames), frames
    first, last = frames[0][1], frames[-1][1]
    assert first["id"] == last["id"] == sweep["id"]
    assert last["state"] == "succeeded", last
    assert all(f["state"] not in FINAL for _, f in frames[:-1]), "a frame after the final one"
    assert len(frames) >= 3, "no frame for the members' progress"
    steps = [sum(m["step"] for m in f["members"]) for _, f in frames]
    assert steps == sorted(steps), steps

    done = get_sweep(mc, sweep["id"])
    assert done["state"] == "succeeded" and done["progress"] == 1.0, done
    assert done["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "cancelled": 0,
    }
    w1 = {m["job_id"]: m["quality"]["w1_a"] for m in done["members"]}
    best_id = min(w1, key=w1.__getitem__)
    assert done["best"]["job_id"] == best_id and done["best"]["value"] == w1[best_id], done
    for member in done["members"]:
        job = mc.get(f"/v1/jobs/{member['job_id']}").json()
        assert job["state"] == "succeeded" and job["step"] == 300, job
        assert job["quality"] == member["quality"] and job["metrics"] == member["metrics"]
    assert last["best"] == done["best"]

    # A stream of a final sweep: one frame, the sweep as it is.
    (only,) = sse_frames(mc, f"/v1/sweeps/{sweep['id']}/events")
    assert only == ("sweep", done)
    listed = mc.get("/v1/sweeps", params={"limit": 1}).json()
    assert listed["total"] >= 1 and listed["items"][0]["id"] == sweep["id"], listed
    assert listed["items"][0]["state"] == "succeeded" and listed["items"][0]["progress"] == 1.0
    assert_error(mc.post(f"/v1/sweeps/{sweep['id']}/cancel"), 409, "conflict")


def test_best_by_d_score_is_the_closest_to_minus_2_ln_2(mc: httpx.Client) -> None:
    sweep = post_sweep(
        mc, {"config": {**SMALL, "steps": 100}, "vary": {"seed": [4, 5]}, "best_by": "d_score"}
    )
    done = wait_sweep(mc, sweep["id"], lambda s: s["state"] in FINAL)
    assert done["state"] == "succeeded", done
    scores = {m["job_id"]: m["metrics"]["d_score"] for m in done["members"]}
    best_id = min(scores, key=lambda j: abs(scores[j] + 2 * math.log(2)))
    assert done["best"] == {
        "job_id": best_id,
        "member_index": next(m["member_index"] for m in done["members"] if m["job_id"] == best_id),
        "value": scores[best_id],
    }


def test_cancel_ends_every_member_and_delete_waits_for_it(mc: httpx.Client) -> None:
    sweep = post_sweep(mc, {"config": LONG, "vary": {"seed": [1, 2, 3, 4]}})
    sid = sweep["id"]
    running = wait_sweep(
        mc, sid, lambda s: any(m["state"] == "running" and m["step"] > 0 for m in s["members"])
    )
    assert running["state"] == "running", running
    assert_error(mc.delete(f"/v1/sweeps/{sid}"), 409, "conflict")
    member = running["members"][0]["job_id"]
    r = mc.post(f"/v1/sweeps/{sid}/cancel")
    assert r.status_code == 202, r.text
    assert all(m["state"] in {"running", "cancelled"} for m in r.json()["members"]), r.json()
    done = wait_sweep(mc, sid, lambda s: s["state"] in FINAL, timeout=30)
    assert done["state"] == "cancelled" and done["counts"]["cancelled"] == 4, done
    assert all(j["state"] == "cancelled" for j in member_jobs(mc, sid))
    assert_error(mc.post(f"/v1/sweeps/{sid}/cancel"), 409, "conflict")
    # A member goes with its sweep, never alone.
    assert_error(mc.delete(f"/v1/jobs/{member}"), 409, "conflict")

    trained = [m["job_id"] for m in done["members"] if m["step"] > 0]
    kept = {
        ck["id"]
        for job_id in trained
        for ck in mc.get("/v1/checkpoints", params={"job_id": job_id}).json()["items"]
    }
    assert kept, "a cancelled running member saved no checkpoint"
    assert mc.delete(f"/v1/sweeps/{sid}").status_code == 204
    assert_error(mc.get(f"/v1/sweeps/{sid}"), 404, "not_found")
    assert member_jobs(mc, sid) == []
    assert_error(mc.get(f"/v1/jobs/{member}"), 404, "not_found")
    for ck in kept:  # the members' checkpoints stay, as a deleted job's do
        assert mc.get(f"/v1/checkpoints/{ck}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/sweeps/sweep_nope"),
        ("GET", "/v1/sweeps/sweep_nope/events"),
        ("POST", "/v1/sweeps/sweep_nope/cancel"),
        ("DELETE", "/v1/sweeps/sweep_nope"),
    ],
)
def test_unknown_sweep_is_404(mc: httpx.Client, method: str, path: str) -> None:
    assert_error(mc.request(method, path), 404, "not_found")
