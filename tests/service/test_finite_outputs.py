"""Outputs finite by construction: a generator whose curves overflow float32 is refused at
upload (422 invalid_checkpoint), a stored one is refused when sampled or drawn, and curves that
come out inf or NaN anyway (huge latents, a seed past the probe) are a 422 non_finite_output,
never a 200 of JSON nulls or a broken figure. In process, through httpx.ASGITransport."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from gan_engine import Checkpoint, CurveSampler, checkpoint_from_bytes
from gan_engine.sampling import probe_latents
from tests.conftest import AppClient
from tests.helpers import assert_error, tiny_checkpoint, wait_for_state

OCTET = {"content-type": "application/octet-stream"}
NPY = "application/x-npy"
F32_MAX = float(np.finfo(np.float32).max)


def scaled(ck: Checkpoint, factor: float, prefixes: tuple[str, ...] = ("g.",)) -> Checkpoint:
    """``ck`` with the tensors under ``prefixes`` times ``factor``: finite, so every field check
    passes, but the generator's curves can be as large as float32 allows, or larger."""
    tensors = {k: v * factor if k.startswith(prefixes) else v for k, v in ck.tensors.items()}
    return dataclasses.replace(ck, tensors=tensors)


def blown() -> Checkpoint:
    """Every G weight x 1e30: two layers take its curves to ~1e60, inf in float32."""
    bad = scaled(tiny_checkpoint(), 1e30)
    assert all(bool(t.isfinite().all()) for t in bad.tensors.values() if t.is_floating_point())
    return bad


def upload(c: AppClient, ck: Checkpoint) -> str:
    r = c.post("/v1/checkpoints", content=ck.to_bytes(), headers=OCTET)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def stored_files(c: AppClient) -> list[str]:
    files = c.data_dir / "files"
    return sorted(p.name for p in files.rglob("*")) if files.exists() else []


@pytest.fixture
def c(make_app_client: Callable[..., AppClient]) -> AppClient:
    return make_app_client(workers=False)  # sampling needs no worker


def test_an_upload_whose_generator_overflows_is_refused_and_nothing_is_stored(
    c: AppClient,
) -> None:
    r = c.post("/v1/checkpoints", content=blown().to_bytes(), headers=OCTET)
    err = assert_error(r, 422, "invalid_checkpoint", field="body")
    assert "the generator's curves are not finite on a probe batch" in err["message"], err
    assert "256 of 256 curves hold inf/nan" in err["message"], err
    assert c.get("/v1/checkpoints").json()["total"] == 0
    assert stored_files(c) == []


def test_a_stored_checkpoint_that_fails_the_probe_is_never_sampled_nor_drawn(
    c: AppClient,
) -> None:
    """A file stored before uploads were probed (written under the storage directly, as an
    older version left it) is refused each time: samples as JSON or .npy, and figures."""
    ck_id = upload(c, tiny_checkpoint())
    bad = blown().to_bytes()
    (c.data_dir / "files" / f"{ck_id}.safetensors").write_bytes(bad)

    for _ in range(2):  # the refusal is cached, and said the same way again
        err = assert_error(
            c.post(f"/v1/checkpoints/{ck_id}/samples", json={"n": 3, "seed": 1}),
            422,
            "non_finite_output",
            field=None,
        )
        assert f"checkpoint {ck_id} cannot be sampled" in err["message"], err
        assert "256 of 256 curves hold inf/nan" in err["message"], err
    r = c.post(f"/v1/checkpoints/{ck_id}/samples", json={"n": 3}, headers={"accept": NPY})
    assert_error(r, 422, "non_finite_output")
    r = c.post(f"/v1/checkpoints/{ck_id}/samples", json={"z": [[0.0] * 5]})
    assert_error(r, 422, "non_finite_output")
    for fmt in ("png", "svg"):
        r = c.get(f"/v1/checkpoints/{ck_id}/figure.{fmt}", params={"n": 3, "seed": 1})
        assert_error(r, 422, "non_finite_output")
    # The record stays listed and its file downloadable: only its curves are refused.
    assert c.get(f"/v1/checkpoints/{ck_id}").status_code == 200
    assert c.get(f"/v1/checkpoints/{ck_id}/file").content == bad


def test_huge_latents_that_overflow_a_probed_generator_are_422_not_nulls(c: AppClient) -> None:
    """Its output layer x 1e34: curves near 1e34 on the probe batch (finite, so accepted),
    but z of 1e6 (within the schema's bound) takes them ~17x past float32's largest."""
    ck_id = upload(c, scaled(tiny_checkpoint(), 1e34, ("g.out.",)))
    ok = c.post(f"/v1/checkpoints/{ck_id}/samples", json={"n": 3, "seed": 1})
    assert ok.status_code == 200 and None not in np.ravel(ok.json()["curves"]), ok.text
    body = {"z": [[0.5] * 5, [1e6] * 5, [-1e6, 1e6, -1e6, 1e6, -1e6]]}
    for accept in ("application/json", NPY):
        r = c.post(f"/v1/checkpoints/{ck_id}/samples", json=body, headers={"accept": accept})
        err = assert_error(r, 422, "non_finite_output", field="z")
        assert "2 of 3 curves" in err["message"] and "not finite" in err["message"], err
        assert "send z rows nearer 0" in err["message"], err


def a_seed_past_the_probe(ck: Checkpoint, margin: float = 1e-3) -> tuple[Checkpoint, int]:
    """``ck`` with its output layer scaled so that the probe batch's largest curve value sits
    just under float32's largest, and a seed whose 64 curves go clearly past it (kept
    ``margin`` away from the edge either way, so float rounding cannot change the outcome).
    The output layer is made non-negative first: over ReLU activations its sums then only
    grow, so no partial sum overflows where the total does not, whatever the order."""
    out = {k: v.abs() if k.startswith("g.out.") else v for k, v in ck.tensors.items()}
    ck = dataclasses.replace(ck, tensors=out)
    sampler = CurveSampler.from_checkpoint(ck)
    probe_max = float(np.abs(sampler.sample(z=probe_latents(ck.config)).curves).max())
    factor = (1 - margin) * F32_MAX / probe_max
    for seed in range(50_000):
        if np.abs(sampler.sample(64, seed=seed).curves).max() > probe_max * (1 + 2 * margin):
            return scaled(ck, factor, ("g.out.",)), seed
    raise AssertionError("no seed's curves go past the probe batch's")


def test_curves_past_float32_for_a_seed_are_422_for_samples_and_figures(c: AppClient) -> None:
    """The probe passed, yet a seed's draws meet latents past its batch: the same 422."""
    ck, seed = a_seed_past_the_probe(tiny_checkpoint())
    ck_id = upload(c, ck)
    r = c.post(f"/v1/checkpoints/{ck_id}/samples", json={"n": 64, "seed": seed})
    err = assert_error(r, 422, "non_finite_output", field=None)
    assert "of 64 curves" in err["message"] and "another seed" in err["message"], err
    for fmt in ("png", "svg"):
        r = c.get(f"/v1/checkpoints/{ck_id}/figure.{fmt}", params={"n": 64, "seed": seed})
        assert_error(r, 422, "non_finite_output")


def test_a_jobs_checkpoint_that_fails_the_probe_is_refused_by_the_job_routes(
    make_app_client: Callable[..., AppClient],
) -> None:
    """A job's own checkpoint whose file fails the probe (a run's weights past float32 between
    two logged steps, or a file an older version left): job samples and figure are 422 too."""
    c = make_app_client()  # one worker, to train the job
    job = c.post("/v1/jobs", json={"config": {"seed": 2, "steps": 20, "log_every": 10}})
    assert job.status_code == 202, job.text
    done = wait_for_state(c, job.json()["id"], {"succeeded", "failed", "cancelled"}, timeout=60)
    assert done["state"] == "succeeded" and done["latest_checkpoint"], done
    ck_file = c.data_dir / "files" / f"{done['latest_checkpoint']}.safetensors"
    ck_file.write_bytes(scaled(checkpoint_from_bytes(ck_file.read_bytes()), 1e30).to_bytes())

    r = c.post(f"/v1/jobs/{done['id']}/samples", json={"n": 2, "seed": 1})
    err = assert_error(r, 422, "non_finite_output")
    assert "not finite on a probe batch" in err["message"], err
    assert_error(c.get(f"/v1/jobs/{done['id']}/figure.png"), 422, "non_finite_output")
