"""Curve-quality metrics against known answers and an independent reference (scipy, numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from gan_engine import artist_works, curve_quality, w1_to_uniform, x_grid
from gan_engine.metrics import BAND_TOLERANCE, curve_quality_rows, fit_a

X = x_grid(15)
U = X * X + 1  # every artist curve is a * U - 1


def real(n: int, seed: int = 0) -> torch.Tensor:
    return artist_works(n, X, torch.Generator().manual_seed(seed))


def curves_with_a(a: torch.Tensor) -> torch.Tensor:
    return torch.outer(a, U) - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_real_curves_score_perfectly(seed: int) -> None:
    curves = real(2_000, seed)
    assert curves.shape == (2_000, 15) and curves.dtype == torch.float32
    q = curve_quality(curves, X)
    assert q.in_band == 1.0
    assert q.resid < 1e-6
    assert q.w1_a < 0.02  # sampling noise only: ~0.005 on 2 000 curves
    assert q.a_mean == pytest.approx(1.5, abs=0.03)
    assert q.a_std == pytest.approx(1 / 12**0.5, abs=0.02)
    a, rms = fit_a(curves, X)
    assert bool(((a > 1 - 1e-6) & (a < 2 + 1e-6)).all())
    assert float(rms.max()) < 1e-6


def test_real_curve_draws_are_seeded() -> None:
    assert torch.equal(real(100, seed=4), real(100, seed=4))
    assert not torch.equal(real(100, seed=4), real(100, seed=5))


def test_collapsed_generator_scores_a_quarter() -> None:
    q = curve_quality(curves_with_a(torch.full((2_000,), 1.5)), X)
    # W1(delta at the midpoint, U(1, 2)) = integral of |p - 1/2| over [0, 1] = 1/4.
    assert q.w1_a == pytest.approx(0.25, abs=1e-6)
    assert q.in_band == 1.0
    assert q.a_mean == pytest.approx(1.5, abs=1e-6) and q.a_std < 1e-6
    assert q.resid < 1e-6


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.5], 0.25),
        ([1.0], 0.5),  # integral of p over [0, 1]
        ([2.0], 0.5),
        ([3.0], 1.5),  # entirely outside: distance to the mean, 3 - 1.5
        ([0.0, 0.0], 1.5),
        ([1.25, 1.75], 0.125),  # each half of U(1, 2) to its midpoint: 2 * (1/2 * 1/4 * 1/2)
    ],
)
def test_w1_known_values(values: list[float], expected: float) -> None:
    assert w1_to_uniform(torch.tensor(values)) == pytest.approx(expected, abs=1e-12)


def test_w1_of_the_uniform_quantiles_vanishes() -> None:
    n = 10_000
    midpoints = 1 + (torch.arange(n, dtype=torch.float64) + 0.5) / n
    # Each piece of width 1/n straddles its midpoint: 2 * (1/2)(1/2n)^2 per piece.
    assert w1_to_uniform(midpoints) == pytest.approx(1 / (4 * n), rel=1e-9)


@pytest.mark.parametrize(("seed", "n"), [(0, 1), (1, 7), (2, 50), (3, 333), (4, 2_000)])
def test_w1_matches_scipy_on_a_dense_uniform_grid(seed: int, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(n, generator=gen) * 3  # inside and outside [1, 2]
    grid = np.linspace(1, 2, 400_001)
    expected = wasserstein_distance(values.numpy(), grid)
    assert w1_to_uniform(values) == pytest.approx(expected, abs=1e-5)
    # Order does not matter, nor does the shape.
    shuffled = values[torch.randperm(n, generator=gen)]
    assert w1_to_uniform(shuffled.reshape(-1, 1)) == pytest.approx(expected, abs=1e-5)


def test_w1_other_interval_matches_scipy() -> None:
    values = torch.randn(200, generator=torch.Generator().manual_seed(9))
    grid = np.linspace(-1, 3, 400_001)
    expected = wasserstein_distance(values.numpy(), grid)
    assert w1_to_uniform(values, low=-1.0, high=3.0) == pytest.approx(expected, abs=1e-5)


def test_w1_needs_values() -> None:
    with pytest.raises(ValueError, match="at least one"):
        w1_to_uniform(torch.empty(0))


@pytest.mark.parametrize("n_out", [0, 1, 250, 999, 1_000])
def test_curves_shifted_out_of_the_band_lower_in_band(n_out: int) -> None:
    curves = real(1_000)
    curves[:n_out] += 1.5  # far above 2x^2 + 1 everywhere
    assert curve_quality(curves, X).in_band == pytest.approx(1 - n_out / 1_000)


def test_one_point_out_of_the_band_is_enough() -> None:
    curves = real(1_000)
    curves[:250] += 1.5  # above the band
    curves[250:300] -= 1.5  # below x^2 - tol everywhere
    curves[300:350, 7] = -0.2  # one point below x^2 - 0.05 = -0.05 at x = 0
    curves[350:400, 0] = 3.2  # one point above 2 * 1 + 1 + 0.05 at x = -1
    assert curve_quality(curves, X).in_band == pytest.approx(0.6)


def test_band_edges_include_the_tolerance() -> None:
    top = curves_with_a(torch.full((4,), 2.0))  # y = 2x^2 + 1, the band's upper edge
    bottom = curves_with_a(torch.full((4,), 1.0))  # y = x^2, the lower edge
    inside = torch.cat([top + 0.8 * BAND_TOLERANCE, bottom - 0.8 * BAND_TOLERANCE])
    outside = torch.cat([top + 1.2 * BAND_TOLERANCE, bottom - 1.2 * BAND_TOLERANCE])
    assert curve_quality(inside, X).in_band == 1.0
    assert curve_quality(outside, X).in_band == 0.0
    assert curve_quality(torch.cat([inside, outside]), X).in_band == 0.5


def test_resid_of_noise_orthogonal_to_the_fit_is_its_rms() -> None:
    curves = real(500)
    sign = torch.tensor([1.0, -1.0]).repeat(8)[:15]
    # Remove the component along U so the fitted a is unchanged and all noise is residual.
    noise = 0.03 * (sign - (sign @ U) / (U @ U) * U)
    q = curve_quality(curves + noise, X)
    assert q.resid == pytest.approx(float(noise.pow(2).mean().sqrt()), rel=1e-4)
    assert q.w1_a == pytest.approx(curve_quality(curves, X).w1_a, abs=1e-6)


def test_resid_and_a_match_numpy_least_squares() -> None:
    rng = np.random.default_rng(0)
    a_true = rng.uniform(1, 2, 300)
    u = (X.double() ** 2 + 1).numpy()  # as fit_a computes it: in float64 from the float32 grid
    noisy = np.outer(a_true, u) - 1 + rng.normal(0, 0.05, (300, 15))
    a_fit, rms = fit_a(torch.from_numpy(noisy), X)
    # Independent reference: lstsq of (y + 1) on u for each curve.
    coef, *_ = np.linalg.lstsq(u[:, None], (noisy + 1).T, rcond=None)
    ref_a = coef[0]
    ref_rms = np.sqrt(((noisy + 1 - np.outer(ref_a, u)) ** 2).mean(axis=1))
    np.testing.assert_allclose(a_fit.numpy(), ref_a, rtol=1e-10)
    np.testing.assert_allclose(rms.numpy(), ref_rms, rtol=1e-8)
    q = curve_quality(torch.from_numpy(noisy).float(), X)
    assert q.resid == pytest.approx(ref_rms.mean(), rel=1e-4)
    # Gaussian noise of sd 0.05 leaves ~0.05 * sqrt(14/15) after fitting one parameter.
    assert q.resid == pytest.approx(0.05 * math.sqrt(14 / 15), rel=0.05)


def test_non_finite_curves_are_out_of_band_and_give_infinite_w1() -> None:
    curves = real(10)
    curves[3, 4] = float("nan")
    q = curve_quality(curves, X)
    assert q.in_band == pytest.approx(0.9)
    assert q.w1_a == math.inf
    assert math.isnan(q.resid)


def test_quality_to_dict() -> None:
    q = curve_quality(real(100), X)
    d = q.to_dict()
    assert set(d) == {"in_band", "resid", "w1_a", "a_mean", "a_std"}
    assert all(isinstance(v, float) for v in d.values())
    assert curve_quality(real(1), X).a_std == 0.0


def test_batched_quality_matches_one_batch_at_a_time() -> None:
    """The population's batched metrics against ``curve_quality`` member by member: real
    curves, noisy ones, some outside the band, a constant batch (a_std 0) and one with a
    non-finite curve (w1 inf, resid nan)."""
    gen = torch.Generator().manual_seed(7)
    batches = [
        real(512, 1),
        real(512, 2) + 0.3 * torch.randn(512, 15, generator=gen),
        curves_with_a(torch.full((512,), 1.25)),
        torch.randn(512, 15, generator=gen) * 3,
    ]
    broken = real(512, 3)
    broken[5, 3] = float("inf")
    batches.append(broken)
    rows = curve_quality_rows(torch.stack(batches), X)
    assert len(rows) == len(batches)
    for batch, got in zip(batches, rows, strict=True):
        want = curve_quality(batch, X)
        for name, value in want.to_dict().items():
            other = got.to_dict()[name]
            if math.isfinite(value):
                assert other == pytest.approx(value, rel=1e-12, abs=1e-12), name
            else:
                assert not math.isfinite(other) and math.isnan(other) == math.isnan(value), name
