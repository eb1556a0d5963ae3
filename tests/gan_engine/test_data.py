"""The evaluation latents: a fixed, evenly spread batch that quality is measured on."""

from __future__ import annotations

import numpy as np
import orjson
import torch

from curvegan._calls import x_grid as client_grid
from gan_engine import curve_quality
from gan_engine.data import eval_latent, x_grid


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


def test_the_x_grid_is_the_clients_exactly_symmetric_with_zero_in_the_middle() -> None:
    """torch.linspace's float32 steps put -4.47e-08 at x[7] where the client computed 0.0:
    the engine's grid, served in every JSON sample response, and the client's own (for .npy
    answers) must be one grid, bit for bit."""
    for n in (1, 2, 3, 14, 15, 16, 101):
        engine = x_grid(n)
        assert engine.dtype == torch.float32
        # The same float32 values; and the same Python floats as the server's JSON carries.
        assert np.array_equal(np.asarray(client_grid(n), dtype=np.float32), engine.numpy()), n
        wire = orjson.loads(orjson.dumps(engine.numpy(), option=orjson.OPT_SERIALIZE_NUMPY))
        assert wire == client_grid(n), n
        assert engine.tolist() == [-v for v in reversed(engine.tolist())] or n == 1
        # The tutorial's linspace(-1, 1, n), to within one float32 rounding.
        expected = np.linspace(-1.0, 1.0, n, dtype=np.float32)
        assert np.allclose(engine.numpy(), expected, rtol=0, atol=2e-7), n
    x = x_grid(15).tolist()
    assert x[0] == -1.0 and x[7] == 0.0 and x[-1] == 1.0
