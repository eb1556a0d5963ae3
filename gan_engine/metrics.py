"""Curve-quality metrics: how much generated curves look like the artist's.

- ``in_band``: share of curves whose points all lie within [x^2 - tol, 2x^2 + 1 + tol];
- ``resid``: mean RMS distance of a curve to its least-squares fit y = a(x^2 + 1) - 1;
- ``w1_a``: Wasserstein-1 distance between the fitted a values and U(1, 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .data import A_HIGH, A_LOW

BAND_TOLERANCE = 0.05
# A power of two: where a Sobol sequence is evenly balanced (see data.eval_latent).
EVAL_SAMPLES = 2_048
# Curves a live figure redraws at each logged step: the first rows of the fixed evaluation
# batch, so that frame after frame shows the same latent points moving (and a handful is
# what the tutorial's figure shows without becoming a blur: it drew one).
PREVIEW_CURVES = 4


@dataclass(frozen=True)
class Quality:
    in_band: float
    resid: float
    w1_a: float
    a_mean: float
    a_std: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_a(curves: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares a for y = a * u - 1 with u = x^2 + 1, and each curve's RMS residual."""
    curves = curves.double()
    u = x.double() ** 2 + 1.0
    a = (curves + 1.0) @ u / (u @ u)
    fitted = torch.outer(a, u) - 1.0
    rms = ((curves - fitted) ** 2).mean(dim=1).sqrt()
    return a, rms


def w1_to_uniform(values: torch.Tensor, low: float = A_LOW, high: float = A_HIGH) -> float:
    """Exact W1 distance between the empirical distribution of ``values`` and U(low, high)."""
    return float(w1_to_uniform_rows(values.flatten().unsqueeze(0), low, high)[0])


def w1_to_uniform_rows(
    values: torch.Tensor, low: float = A_LOW, high: float = A_HIGH
) -> torch.Tensor:
    """``w1_to_uniform`` of each row of a (k, n) tensor at once (float64, shape (k,)).

    W1 = integral over p in [0, 1] of |Q_emp(p) - Q_U(p)|; on each quantile step
    [(i-1)/n, i/n) Q_emp is the i-th smallest value, so every piece integrates in closed form.
    """
    n = values.shape[1]
    if n == 0:
        raise ValueError("w1_to_uniform needs at least one value")
    width = high - low
    c = (torch.sort(values.double(), dim=1).values - low) / width  # in U(0, 1) units
    left = torch.arange(n, dtype=torch.float64, device=values.device) / n
    right = left + 1.0 / n
    below = ((right - c) ** 2 - (left - c) ** 2) / 2  # c <= left: p - c > 0 on the piece
    above = ((c - left) ** 2 - (c - right) ** 2) / 2  # c >= right
    inside = ((c - left) ** 2 + (right - c) ** 2) / 2  # the piece straddles c
    piece = torch.where(c <= left, below, torch.where(c >= right, above, inside))
    return piece.sum(dim=1) * width


def curve_quality_rows(curves: torch.Tensor, x: torch.Tensor) -> list[Quality]:
    """``curve_quality`` of K batches at once, curves of shape (K, n, len(x)): a population
    evaluates all its members in a few batched kernels (a loop over members took ~15% of a
    32-member population's training time). ``curve_quality`` is the oracle it is tested
    against."""
    curves = curves.detach()
    x2 = x * x
    lower, upper = x2 - BAND_TOLERANCE, 2 * x2 + 1 + BAND_TOLERANCE
    in_band = ((curves >= lower) & (curves <= upper)).all(dim=2).double().mean(dim=1)
    c64 = curves.double()
    u = x.double() ** 2 + 1.0
    a = (c64 + 1.0) @ u / (u @ u)  # (K, n)
    rms = ((c64 - (a.unsqueeze(2) * u - 1.0)) ** 2).mean(dim=2).sqrt().mean(dim=1)
    finite = torch.isfinite(a).all(dim=1)
    w1 = w1_to_uniform_rows(torch.where(torch.isfinite(a), a, 0.0))
    w1 = torch.where(finite, w1, float("inf"))
    n = a.shape[1]
    a_std = a.std(dim=1) if n > 1 else torch.zeros_like(a[:, 0])
    rows = zip(
        in_band.tolist(),
        rms.tolist(),
        w1.tolist(),
        a.mean(dim=1).tolist(),
        a_std.tolist(),
        strict=True,
    )
    return [Quality(*row) for row in rows]


def curve_quality(curves: torch.Tensor, x: torch.Tensor) -> Quality:
    """All quality metrics for a batch of curves of shape (n, len(x))."""
    curves = curves.detach()
    x2 = x * x
    lower, upper = x2 - BAND_TOLERANCE, 2 * x2 + 1 + BAND_TOLERANCE
    inside = ((curves >= lower) & (curves <= upper)).all(dim=1)
    a, rms = fit_a(curves, x)
    finite = torch.isfinite(a)
    return Quality(
        in_band=float(inside.double().mean()),
        resid=float(rms.mean()),
        w1_a=w1_to_uniform(a) if bool(finite.all()) else float("inf"),
        a_mean=float(a.mean()),
        a_std=float(a.std()) if a.numel() > 1 else 0.0,
    )
