"""The evaluation latents: a fixed, evenly spread batch that quality is measured on."""

from __future__ import annotations

import torch

from gan_engine import curve_quality
from gan_engine.data import eval_latent


def test_evaluation_latents_are_fixed_even_and_leave_the_rngs_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a = eval_latent(2048, 5, "uniform", seed=9)
    assert torch.equal(torch.rand(3), expected)  # the global stream did not move
    assert torch.equal(a, eval_latent(2048, 5, "uniform", seed=9))
    assert not torch.equal(a, eval_latent(2048, 5, "uniform", seed=10))
    assert a.min() >= -1 and a.max() <= 1
    # Even coverage: every one of 16 bins of each coordinate holds 2048/16 points exactly.
    counts = torch.stack([torch.histc(a[:, k], bins=16, min=-1, max=1) for k in range(5)])
    assert torch.all(counts == 128), counts
    z = eval_latent(2048, 5, "normal", seed=9)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z.mean(0), torch.zeros(5), atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(5), atol=0.02, rtol=0)


def test_a_perfect_generator_scores_far_below_the_target_on_the_evaluation_batch() -> None:
    # Why the batch is a Sobol sequence: the artist itself, mapped from its latents, must
    # not fail the w1_a target by the luck of the draw (independent draws: ~15% of seeds).
    x = torch.linspace(-1, 1, 15)
    for seed in range(20):
        a = 1.5 + 0.5 * eval_latent(2048, 1, "uniform", seed)  # a ~ U(1, 2)
        curves = a * (x * x) + (a - 1)
        assert curve_quality(curves, x).w1_a < 0.002, seed
