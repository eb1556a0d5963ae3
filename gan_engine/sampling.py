"""Sampling curves from a trained generator, in bounded-memory chunks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import Checkpoint
from .checkpoint_checks import CheckpointError
from .config import MAX_SEED, TrainConfig
from .data import latent, x_grid
from .models import Generator, generator_for

# Latents are drawn in fixed-size chunks from one seeded stream, so a seed gives the same
# latents whatever n is (curves then equal to float rounding, and bit-equal for the same n).
CHUNK = 16_384
# Each of the two hidden-activation buffers holds at most this many floats (8 MiB): a wide
# generator runs a chunk in slices of fewer rows instead of growing the working set.
SCRATCH_FLOATS = 2**21
# The probe batch every checkpoint from outside must pass before it is sampled: seeded draws of
# the config's latent distribution, and as many again with one coordinate at an extreme that
# sampling does meet (4 sigma: about 1 draw in 3 200 of n_ideas=5 has one; a uniform's bounds).
# Its own seed, so a checkpoint passes or fails the same way everywhere.
PROBE_SEED = 20_406
PROBE_DRAWN = 128
PROBE_EXTREME = {"normal": 4.0, "uniform": 1.0}


def probe_latents(config: TrainConfig) -> torch.Tensor:
    """The probe batch: PROBE_DRAWN seeded latents, then the same rows with one coordinate (in
    turn) set to +extreme or -extreme, shape (2 * PROBE_DRAWN, n_ideas)."""
    drawn = latent(
        PROBE_DRAWN, config.n_ideas, config.latent, torch.Generator().manual_seed(PROBE_SEED)
    )
    extreme = drawn.clone()
    rows = torch.arange(PROBE_DRAWN)
    signs = torch.where(rows % 2 == 0, 1.0, -1.0)
    extreme[rows, (rows // 2) % config.n_ideas] = signs * PROBE_EXTREME[config.latent]
    return torch.cat([drawn, extreme])


def non_finite_rows(curves: np.ndarray) -> int:
    """How many curves hold an infinity or a NaN."""
    if np.isfinite(curves).all():  # the usual answer, 6x faster than counting row by row
        return 0
    return int((~np.isfinite(curves)).any(axis=1).sum())


@dataclass(frozen=True)
class Samples:
    x: np.ndarray  # (n_points,) float32: where every curve is drawn
    curves: np.ndarray  # (n, n_points) float32
    seed: int | None  # the seed used, None when the caller gave z


class CurveSampler:
    """Draws curves from one generator; thread-safe for concurrent readers (inference only)."""

    def __init__(self, generator: Generator, config: TrainConfig) -> None:
        self.g = generator.eval().requires_grad_(False)
        self.config = config
        self.x = x_grid(config.n_points).numpy()

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> CurveSampler:
        cfg = ckpt.config
        # Built on the meta device and given the checkpoint's tensors: no throwaway random
        # init, and the caller's global RNG is left as it was.
        with torch.device("meta"):
            g = generator_for(cfg)
        prefix = ckpt.generator_prefix
        g.load_state_dict(
            {k[len(prefix) :]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)},
            assign=True,
        )
        return cls(g, cfg)

    def probe(self) -> None:
        """Raises CheckpointError (field ``body``) unless every curve of the probe batch is
        finite: a generator whose weights are finite but huge gives inf and NaN curves, which
        JSON cannot carry and no figure can draw."""
        curves = self.sample(z=probe_latents(self.config)).curves
        bad = non_finite_rows(curves)
        if bad:
            raise CheckpointError(
                f"the generator's curves are not finite on a probe batch: {bad} of "
                f"{len(curves)} curves hold inf/nan (its weights overflow float32)"
            )

    def sample(
        self,
        n: int | None = None,
        seed: int | None = None,
        z: np.ndarray | torch.Tensor | None = None,
    ) -> Samples:
        """``n`` curves from latents drawn with ``seed`` (random when None), or from ``z``."""
        cfg = self.config
        if z is not None:
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
            if zt.ndim != 2 or zt.shape[1] != cfg.n_ideas:
                raise ValueError(f"z must have shape (n, {cfg.n_ideas}), got {tuple(zt.shape)}")
            if n is not None and n != zt.shape[0]:
                raise ValueError(f"n={n} disagrees with z's {zt.shape[0]} rows")
            if not bool(torch.isfinite(zt).all()):
                raise ValueError("z must hold finite numbers")
            n, seed = zt.shape[0], None
        if n is None or isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if z is None:
            if seed is None:
                seed = secrets.randbits(63)
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
                raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
        out = np.empty((n, cfg.n_points), dtype=np.float32)
        out_t = torch.from_numpy(out)
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.inference_mode():
            # Hidden activations go to buffers made once per call and reused by every slice.
            rows = max(1, min(CHUNK, SCRATCH_FLOATS // self.g.width))
            scratch = self.g.scratch(min(n, rows))
            for start in range(0, n, CHUNK):
                stop = min(start + CHUNK, n)
                if z is None:
                    chunk_z = latent(CHUNK, cfg.n_ideas, cfg.latent, rng)[: stop - start]
                else:
                    chunk_z = zt[start:stop]
                for lo in range(0, stop - start, rows):
                    hi = min(lo + rows, stop - start)
                    self.g.forward_into(chunk_z[lo:hi], out_t[start + lo : start + hi], scratch)
        return Samples(x=self.x.copy(), curves=out, seed=seed)
