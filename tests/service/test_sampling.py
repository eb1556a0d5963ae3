"""Sampling over real HTTP: POST /v1/checkpoints/{id}/samples and /v1/jobs/{id}/samples."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from gan_engine import Checkpoint, CurveSampler
from tests.conftest import AppClient
from tests.helpers import Server, assert_error, tiny_checkpoint

OCTET = {"content-type": "application/octet-stream"}
NPY = "application/x-npy"
FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    return tiny_checkpoint(seed=1, steps=50, log_every=25)


@pytest.fixture(scope="module")
def sampler(ckpt: Checkpoint) -> CurveSampler:
    return CurveSampler.from_checkpoint(ckpt)


@pytest.fixture(scope="module")
def cid(module_server: Server, ckpt: Checkpoint) -> str:
    with module_server.client() as c:
        r = c.post("/v1/checkpoints", content=ckpt.to_bytes(), headers=OCTET)
        assert r.status_code == 201, r.text
        return r.json()["id"]


def sample(client: httpx.Client, cid: str, body: object, **kw: object) -> httpx.Response:
    return client.post(f"/v1/checkpoints/{cid}/samples", json=body, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- JSON samples


def test_seeded_samples_shape_and_values(mc: httpx.Client, cid: str, sampler: CurveSampler) -> None:
    r = sample(mc, cid, {"n": 5, "seed": 3})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) >= {"checkpoint_id", "x", "curves", "seed"}
    assert body["checkpoint_id"] == cid
    assert body["seed"] == 3
    assert len(body["x"]) == 15
    np.testing.assert_allclose(body["x"], np.linspace(-1, 1, 15), atol=1e-6)
    curves = np.asarray(body["curves"], dtype=np.float64)
    assert curves.shape == (5, 15)
    assert np.isfinite(curves).all()
    local = sampler.sample(5, seed=3).curves
    np.testing.assert_allclose(curves, local, rtol=1e-6, atol=1e-6)

    again = sample(mc, cid, {"n": 5, "seed": 3}).json()
    assert again["curves"] == body["curves"]
    other = sample(mc, cid, {"n": 5, "seed": 4}).json()
    assert other["curves"] != body["curves"]


def test_without_seed_a_seed_is_echoed_and_reproducible(mc: httpx.Client, cid: str) -> None:
    first = sample(mc, cid, {"n": 4}).json()
    seed = first["seed"]
    assert isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
    second = sample(mc, cid, {"n": 4}).json()
    assert second["seed"] != seed  # a fresh random seed each time
    replay = sample(mc, cid, {"n": 4, "seed": seed}).json()
    assert replay["seed"] == seed
    assert replay["curves"] == first["curves"]


def test_z_gives_the_local_samplers_curves(
    mc: httpx.Client, cid: str, sampler: CurveSampler
) -> None:
    z = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    r = sample(mc, cid, {"z": z.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["seed"] is None
    curves = np.asarray(body["curves"])
    assert curves.shape == (5, 15)
    np.testing.assert_allclose(curves, sampler.sample(z=z).curves, rtol=1e-6, atol=1e-6)
    # n may be given with z when it agrees.
    with_n = sample(mc, cid, {"n": 5, "z": z.tolist()})
    assert with_n.status_code == 200, with_n.text
    assert with_n.json()["curves"] == body["curves"]


def test_npy_response(mc: httpx.Client, cid: str) -> None:
    as_json = sample(mc, cid, {"n": 7, "seed": 11}).json()
    r = sample(mc, cid, {"n": 7, "seed": 11}, headers={"accept": NPY})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith(NPY), r.headers
    arr = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert arr.dtype == np.float32
    assert arr.shape == (7, 15)
    np.testing.assert_allclose(arr, np.asarray(as_json["curves"]), rtol=1e-6, atol=1e-6)


def test_default_limit_allows_100000_as_npy(
    mc: httpx.Client, cid: str, sampler: CurveSampler
) -> None:
    r = sample(mc, cid, {"n": 100_000, "seed": 5}, headers={"accept": NPY})
    assert r.status_code == 200, r.text[:300]
    arr = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert arr.shape == (100_000, 15) and arr.dtype == np.float32
    np.testing.assert_allclose(arr[-3:], sampler.sample(100_000, seed=5).curves[-3:], atol=1e-6)


def test_ema_checkpoint_samples_the_ema_generator(mc: httpx.Client) -> None:
    ckpt = tiny_checkpoint(seed=4, steps=20, log_every=10, g_ema=0.9)
    r = mc.post("/v1/checkpoints", content=ckpt.to_bytes(), headers=OCTET)
    assert r.status_code == 201, r.text
    body = sample(mc, r.json()["id"], {"n": 4, "seed": 8}).json()
    local = CurveSampler.from_checkpoint(ckpt).sample(4, seed=8).curves
    np.testing.assert_allclose(body["curves"], local, rtol=1e-6, atol=1e-6)


def test_unknown_checkpoint_is_404(mc: httpx.Client) -> None:
    assert_error(sample(mc, "does-not-exist", {"n": 5, "seed": 1}), 404, "not_found")
    r = sample(mc, "does-not-exist", {"n": 5}, headers={"accept": NPY})
    assert_error(r, 404, "not_found")


def test_deleted_checkpoint_cannot_be_sampled(mc: httpx.Client, ckpt: Checkpoint) -> None:
    cid2 = mc.post("/v1/checkpoints", content=ckpt.to_bytes(), headers=OCTET).json()["id"]
    assert sample(mc, cid2, {"n": 2, "seed": 1}).status_code == 200  # now cached
    assert mc.delete(f"/v1/checkpoints/{cid2}").status_code == 204
    assert_error(sample(mc, cid2, {"n": 2, "seed": 1}), 404, "not_found")


# ----------------------------------------------------------------------------- bad requests


def _names(field: str) -> Callable[[dict], bool]:
    """The error names ``field``: as its ``field`` or as a word in the message."""

    def check(err: dict) -> bool:
        f = err.get("field") or ""
        return (
            f == field
            or f.startswith(field + ".")
            or f.startswith(field + "[")
            or bool(re.search(rf"(^|\W){re.escape(field)}(\W|$)", err["message"]))
        )

    return check


BAD_BODIES: dict[str, tuple[object, str, str | None]] = {
    # name: (body, field the error must name, text the message must hold (the limit))
    "n_zero": ({"n": 0}, "n", "[1, 100000]"),
    "n_negative": ({"n": -1, "seed": 1}, "n", "[1, 100000]"),
    "n_over_default_limit": ({"n": 100_001, "seed": 1}, "n", "[1, 100000]"),
    "n_string": ({"n": "ten"}, "n", None),
    "n_fraction": ({"n": 1.5}, "n", None),
    "n_list": ({"n": [5]}, "n", None),
    "n_null_without_z": ({"n": None, "seed": 1}, "n", None),
    "missing_n_and_z": ({}, "n", None),
    "missing_n_with_seed": ({"seed": 3}, "n", None),
    "seed_negative": ({"n": 2, "seed": -1}, "seed", None),
    "seed_string": ({"n": 2, "seed": "abc"}, "seed", None),
    "seed_too_big": ({"n": 2, "seed": 2**64}, "seed", None),
    "z_four_columns": ({"z": [[0.0, 0.0, 0.0, 0.0]] * 3}, "z", "5"),
    "z_six_columns": ({"z": [[0.0] * 6]}, "z", "5"),
    "z_strings": ({"z": [["a", 0.0, 0.0, 0.0, 0.0]]}, "z", None),
    "z_ragged": ({"z": [[0.0] * 5, [0.0] * 4]}, "z", None),
    "z_flat": ({"z": [0.0] * 5}, "z", None),
    "z_not_list": ({"z": "zeros"}, "z", None),
    "z_empty": ({"z": []}, "z", None),
    "n_disagrees_with_z": ({"n": 3, "z": [[0.0] * 5]}, "n", None),
    "unknown_field": ({"n": 2, "seeds": 3}, "seeds", None),
    "body_list": ([{"n": 2}], "body", None),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_sample_request_is_422(mc: httpx.Client, cid: str, case: str) -> None:
    body, field, text = BAD_BODIES[case]
    err = assert_error(sample(mc, cid, body), 422, "validation_error")
    assert _names(field)(err), f"{case}: error does not name {field!r}: {err}"
    if text is not None:
        assert text in err["message"], f"{case}: message lacks {text!r}: {err}"


@pytest.mark.parametrize(
    "raw",
    [
        '{"z": [[NaN, 0, 0, 0, 0]]}',
        '{"z": [[Infinity, 0, 0, 0, 0]]}',
        '{"z": [[1e400, 0, 0, 0, 0]]}',
        '{"n": NaN}',
        '{"n": 5, "seed": 3',
        "n=5",
    ],
)
def test_non_finite_or_broken_json_is_422(mc: httpx.Client, cid: str, raw: str) -> None:
    r = mc.post(
        f"/v1/checkpoints/{cid}/samples",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert_error(r, 422)


def test_bad_request_on_unknown_checkpoint_is_never_500(mc: httpx.Client) -> None:
    r = sample(mc, "does-not-exist", {"n": -1})
    assert r.status_code in (404, 422), r.text
    assert_error(r, r.status_code)


def test_max_samples_setting(make_app_client: Callable[..., AppClient], ckpt: Checkpoint) -> None:
    c = make_app_client(max_samples=1000, workers=False)  # the API's own setting: in process
    cid = c.post("/v1/checkpoints", content=ckpt.to_bytes(), headers=OCTET).json()["id"]
    at_limit = sample(c, cid, {"n": 1000, "seed": 1}, headers={"accept": NPY})
    assert at_limit.status_code == 200, at_limit.text
    assert np.load(io.BytesIO(at_limit.content)).shape == (1000, 15)
    err = assert_error(sample(c, cid, {"n": 1001, "seed": 1}), 422, "validation_error")
    assert _names("n")(err), err
    assert "1000" in err["message"] and "1001" in err["message"], err
    # The limit holds for z too.
    err = assert_error(sample(c, cid, {"z": [[0.0] * 5] * 1001}), 422)
    assert "1000" in err["message"], err


# ----------------------------------------------------------------------------- job samples


def test_job_samples(
    make_app_client: Callable[..., AppClient], wait_state: Callable[..., dict]
) -> None:
    # In process, its one worker a process of the app's pool, as under a server.
    c = make_app_client(max_concurrent_jobs=1)
    long_cfg = {"seed": 5, "steps": 10_000_000, "log_every": 1_000_000, "checkpoint_every": 0}
    first = c.post("/v1/jobs", json={"name": "long", "config": long_cfg})
    assert first.status_code == 202, first.text
    first_id = first.json()["id"]
    second = c.post("/v1/jobs", json={"name": "waits", "config": {"seed": 6, "steps": 50}})
    assert second.status_code == 202, second.text
    second_id = second.json()["id"]
    wait_state(c, first_id, {"running"}, timeout=30)
    job2 = c.get(f"/v1/jobs/{second_id}").json()
    assert job2["state"] == "queued", job2
    assert job2["latest_checkpoint"] is None

    err = assert_error(c.post(f"/v1/jobs/{second_id}/samples", json={"n": 3}), 409)
    assert err.get("error") == "conflict", err
    # The running job has no checkpoint yet either (checkpoint_every=0: only at the end).
    job1 = c.get(f"/v1/jobs/{first_id}").json()
    if job1["latest_checkpoint"] is None:
        assert_error(c.post(f"/v1/jobs/{first_id}/samples", json={"n": 3}), 409, "conflict")
    assert_error(c.post("/v1/jobs/no-such-job/samples", json={"n": 3}), 404, "not_found")

    # The queued job, cancelled, still has no checkpoint; the running one keeps a final one.
    assert c.post(f"/v1/jobs/{second_id}/cancel").status_code == 202
    assert wait_state(c, second_id, FINAL, timeout=10)["state"] == "cancelled"
    assert_error(c.post(f"/v1/jobs/{second_id}/samples", json={"n": 3}), 409, "conflict")
    assert c.post(f"/v1/jobs/{first_id}/cancel").status_code == 202
    job1 = wait_state(c, first_id, FINAL, timeout=15)
    assert job1["state"] == "cancelled", job1
    assert job1["latest_checkpoint"], job1
    r = c.post(f"/v1/jobs/{first_id}/samples", json={"n": 3, "seed": 9})
    assert r.status_code == 200, r.text
    assert r.json()["checkpoint_id"] == job1["latest_checkpoint"]

    # A job that ran to the end samples from its latest checkpoint, same as that checkpoint.
    third = c.post("/v1/jobs", json={"config": {"seed": 7, "steps": 50, "log_every": 25}})
    assert third.status_code == 202, third.text
    job3 = wait_state(c, third.json()["id"], FINAL, timeout=60)
    assert job3["state"] == "succeeded", job3
    via_job = c.post(f"/v1/jobs/{job3['id']}/samples", json={"n": 5, "seed": 3})
    assert via_job.status_code == 200, via_job.text
    body = via_job.json()
    assert body["checkpoint_id"] == job3["latest_checkpoint"]
    assert body["seed"] == 3
    via_ckpt = sample(c, job3["latest_checkpoint"], {"n": 5, "seed": 3}).json()
    assert body["curves"] == via_ckpt["curves"]
    # ... and equal to the engine sampling the downloaded file.
    from gan_engine import checkpoint_from_bytes

    f = c.get(f"/v1/checkpoints/{job3['latest_checkpoint']}/file")
    local = CurveSampler.from_checkpoint(checkpoint_from_bytes(f.content)).sample(5, seed=3)
    np.testing.assert_allclose(body["curves"], local.curves, rtol=1e-6, atol=1e-6)
    npy = c.post(
        f"/v1/jobs/{job3['id']}/samples", json={"n": 5, "seed": 3}, headers={"accept": NPY}
    )
    assert npy.status_code == 200, npy.text
    np.testing.assert_allclose(np.load(io.BytesIO(npy.content)), local.curves, atol=1e-6)
    err = assert_error(c.post(f"/v1/jobs/{job3['id']}/samples", json={"n": 0}), 422)
    assert _names("n")(err), err
