"""The artist's curves: y = a * x**2 + (a - 1) with a ~ U(1, 2), drawn with torch."""

from __future__ import annotations

import math

import torch

A_LOW, A_HIGH = 1.0, 2.0


def x_grid(n_points: int) -> torch.Tensor:
    """The fixed x positions every curve is drawn at, shape (n_points,): the tutorial's
    linspace(-1, 1, n_points) in float32, computed symmetric so that the middle point is
    exactly 0.0 (torch.linspace's float32 steps leave -4.47e-08 there). The client computes
    the same grid (curvegan/_calls.py x_grid); a test holds them equal bit for bit."""
    if n_points == 1:
        return torch.tensor([-1.0])
    half = (n_points - 1) / 2
    # (i - half) / half in float64, then rounded once: exact at -1, 0 and 1, and x[i] == -x[-1-i].
    i = torch.arange(n_points, dtype=torch.float64)
    return ((i - half) / half).to(torch.float32)


def artist_works(batch_size: int, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A batch of real curves, shape (batch_size, len(x)), from a seeded generator."""
    offset = torch.rand(batch_size, 1, generator=generator)  # a - 1, uniform on [0, 1)
    x2 = (x * x).unsqueeze(0)
    # a x^2 + (a - 1) == (a - 1)(x^2 + 1) + x^2: a single fused multiply-add for the batch.
    return torch.addmm(x2, offset, x2 + 1.0)


def latent(
    batch_size: int, n_ideas: int, kind: str, generator: torch.Generator | None
) -> torch.Tensor:
    """G's input "ideas": standard normal (the tutorial's) or uniform on [-1, 1]."""
    if kind == "normal":
        return torch.randn(batch_size, n_ideas, generator=generator)
    if kind == "uniform":
        return torch.rand(batch_size, n_ideas, generator=generator).mul_(2.0).sub_(1.0)
    raise ValueError(f"unknown latent kind {kind!r}")


def eval_latent(n: int, n_ideas: int, kind: str, seed: int) -> torch.Tensor:
    """A fixed evaluation batch of latents: a scrambled Sobol sequence, mapped to the latent
    distribution. Its points cover the latent space evenly, so quality measured on them
    estimates the generator's whole distribution with a far smaller sampling error than as
    many independent draws (W1 of a perfect generator: ~0.001 instead of ~0.007 on 2 000).
    Seeded on its own, never touching training's random stream or the global one."""
    engine = torch.quasirandom.SobolEngine(n_ideas, scramble=True, seed=seed)
    u = engine.draw(n, dtype=torch.float64)
    if kind == "uniform":
        return u.mul(2.0).sub(1.0).float()
    if kind == "normal":
        # The inverse normal CDF; u is kept off 0 and 1, where it is infinite.
        u = u.clamp(1e-12, 1.0 - 1e-12)
        return (math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)).float()
    raise ValueError(f"unknown latent kind {kind!r}")
