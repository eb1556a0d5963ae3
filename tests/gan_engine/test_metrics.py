"""Curve-quality metrics against known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from gan_engine import artist_works, curve_quality, w1_to_uniform, x_grid

X = x_grid(15)


def real(n: int, seed: int = 0) -> torch.Tensor:
    return artist_works(n, X, torch.Generator().manual_seed(seed))


def test_real_curves_score_perfectly() -> None:
    q = curve_quality(real(2_000), X)
    assert q.in_band == 1.0
    assert q.resid < 1e-6
    assert q.w1_a < 0.02  # sampling noise only: ~0.005 on 2 000 curves
    assert q.a_std == pytest.approx(1 / 12**0.5, abs=0.02)


def test_collapsed_generator_scores_a_quarter() -> None:
    curves = torch.outer(torch.full((2_000,), 1.5), X * X + 1) - 1
    q = curve_quality(curves, X)
    assert q.w1_a == pytest.approx(0.25, abs=1e-6)
    assert q.in_band == 1.0 and q.a_std < 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_w1_matches_scipy_on_a_dense_uniform_grid(seed: int) -> None:
    values = torch.rand(50, generator=torch.Generator().manual_seed(seed)) * 3
    grid = np.linspace(1, 2, 400_001)
    assert w1_to_uniform(values) == pytest.approx(
        wasserstein_distance(values.numpy(), grid), abs=1e-5
    )


def test_curves_out_of_band_are_counted() -> None:
    curves = real(1_000)
    curves[:250] += 1.5  # far above 2x^2 + 1 everywhere
    curves[250:300, 7] = -0.2  # one point below x^2 - 0.05 at x = 0
    q = curve_quality(curves, X)
    assert q.in_band == pytest.approx(0.7)


def test_resid_is_the_rms_distance_to_the_fitted_curve() -> None:
    curves = real(500)
    sign = torch.tensor([1.0, -1.0]).repeat(8)[:15]
    noise = 0.03 * (sign - sign @ (X * X + 1) / ((X * X + 1) @ (X * X + 1)) * (X * X + 1))
    q = curve_quality(curves + noise, X)
    assert q.resid == pytest.approx(float(noise.pow(2).mean().sqrt()), rel=1e-4)
