"""The generator's probe: a fixed batch of latents (seeded draws and 4-sigma extremes) on which
every curve must be finite before a checkpoint from outside is sampled."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gan_engine import Checkpoint, CheckpointError, CurveSampler, TrainConfig
from gan_engine.data import latent
from gan_engine.sampling import PROBE_DRAWN, PROBE_SEED, non_finite_rows, probe_latents
from tests.helpers import tiny_checkpoint

F32_MAX = float(np.finfo(np.float32).max)


def scaled(ck: Checkpoint, factor: float, prefix: str) -> Checkpoint:
    tensors = {k: v * factor if k.startswith(prefix) else v for k, v in ck.tensors.items()}
    return dataclasses.replace(ck, tensors=tensors)


@pytest.mark.parametrize(("kind", "edge"), [("normal", 4.0), ("uniform", 1.0)])
def test_the_probe_batch_is_seeded_draws_then_the_same_rows_with_one_extreme(
    kind: str, edge: float
) -> None:
    config = TrainConfig(seed=1, n_ideas=3, latent=kind)  # type: ignore[arg-type]
    before = torch.get_rng_state()
    z = probe_latents(config)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is left alone
    assert z.shape == (2 * PROBE_DRAWN, 3) and torch.equal(z, probe_latents(config))
    drawn, extreme = z[:PROBE_DRAWN], z[PROBE_DRAWN:]
    seeded = latent(PROBE_DRAWN, 3, kind, torch.Generator().manual_seed(PROBE_SEED))
    assert torch.equal(drawn, seeded)
    changed = extreme != drawn
    assert changed.sum(dim=1).tolist() == [1] * PROBE_DRAWN  # one coordinate per row
    assert torch.equal(extreme[changed].abs(), torch.full((PROBE_DRAWN,), edge))
    assert (extreme[changed] > 0).sum() == (extreme[changed] < 0).sum() == PROBE_DRAWN // 2
    assert set(changed.nonzero()[:, 1].tolist()) == {0, 1, 2}  # each coordinate in turn


def test_a_trained_generator_passes_the_probe() -> None:
    for ck in (tiny_checkpoint(), tiny_checkpoint(g_ema=0.9, latent="uniform")):
        CurveSampler.from_checkpoint(ck).probe()


def test_finite_but_huge_weights_fail_the_probe_saying_how_many_curves() -> None:
    ck = scaled(tiny_checkpoint(), 1e30, "g.")
    assert all(bool(t.isfinite().all()) for t in ck.tensors.values() if t.is_floating_point())
    with pytest.raises(CheckpointError) as caught:
        CurveSampler.from_checkpoint(ck).probe()
    assert caught.value.field == "body"
    assert str(caught.value).startswith(
        "the generator's curves are not finite on a probe batch: 256 of 256 curves hold inf/nan"
    )


def test_the_extremes_catch_a_generator_finite_on_the_draws_alone() -> None:
    """Its output layer scaled so that the seeded draws' curves stay just under float32's
    largest value: only the 4-sigma rows go past it, and they are refused. The layer is made
    non-negative first: over ReLU activations its sums only grow, so no partial sum overflows
    where the total does not, whatever order the matrix product adds in."""
    ck = tiny_checkpoint()  # a fresh copy, its tensors ours to change
    ck.tensors.update({k: v.abs() for k, v in ck.tensors.items() if k.startswith("g.out.")})
    sampler = CurveSampler.from_checkpoint(ck)
    z = probe_latents(ck.config)
    drawn = np.abs(sampler.sample(z=z[:PROBE_DRAWN]).curves).max()
    extreme = np.abs(sampler.sample(z=z[PROBE_DRAWN:]).curves).max()
    assert extreme > 1.01 * drawn  # the extremes reach further, by more than rounding
    ck = scaled(ck, 0.999 * F32_MAX / float(drawn), "g.out.")
    bad = CurveSampler.from_checkpoint(ck)
    assert np.isfinite(bad.sample(z=z[:PROBE_DRAWN]).curves).all()
    with pytest.raises(CheckpointError, match=r"not finite on a probe batch: \d+ of 256"):
        bad.probe()


def test_the_probe_reads_the_weights_sampling_uses() -> None:
    """With EMA on, sampling draws from g_ema: huge g_ema weights fail, huge g weights not."""
    ck = tiny_checkpoint(g_ema=0.9)
    CurveSampler.from_checkpoint(scaled(ck, 1e30, "g.")).probe()
    with pytest.raises(CheckpointError, match="256 of 256"):
        CurveSampler.from_checkpoint(scaled(ck, 1e30, "g_ema.")).probe()


def test_non_finite_rows_counts_curves_holding_inf_or_nan() -> None:
    curves = np.zeros((4, 3), dtype=np.float32)
    assert non_finite_rows(curves) == 0
    curves[1, 0], curves[1, 2], curves[3, 1] = np.inf, np.nan, -np.inf
    assert non_finite_rows(curves) == 2
