"""Sampling: shapes, reproducibility, chunking, given latents and bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_engine import CurveSampler, TrainConfig, Trainer, load_checkpoint
from gan_engine.data import latent
from gan_engine.models import Generator
from gan_engine.sampling import CHUNK, SCRATCH_FLOATS

ROOT = Path(__file__).resolve().parents[2]


def trainer(**config: object) -> Trainer:
    t = Trainer(TrainConfig(seed=2, steps=10, log_every=5, checkpoint_every=0, **config))  # type: ignore[arg-type]
    for _ in range(5):
        t.step()
    return t


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sampling") / "c.safetensors"
    trainer().checkpoint().save(path)
    return path


@pytest.fixture(scope="module")
def sampler(ckpt_path: Path) -> CurveSampler:
    return CurveSampler.from_checkpoint(load_checkpoint(ckpt_path))


def forward(s: CurveSampler, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return s.g(z).numpy()


def test_shape_dtype_and_grid(sampler: CurveSampler) -> None:
    s = sampler.sample(7, seed=1)
    assert s.curves.shape == (7, 15) and s.curves.dtype == np.float32
    assert s.x.shape == (15,) and s.x.dtype == np.float32
    np.testing.assert_allclose(s.x, np.linspace(-1, 1, 15), atol=1e-7)
    assert s.x[0] == -1.0 and s.x[-1] == 1.0
    assert s.seed == 1
    assert np.isfinite(s.curves).all()
    # The grid is the caller's copy.
    s.x[:] = 0
    assert sampler.sample(1, seed=1).x[-1] == 1.0


def test_n_zero_gives_an_empty_batch(sampler: CurveSampler) -> None:
    s = sampler.sample(0, seed=1)
    assert s.curves.shape == (0, 15) and s.curves.dtype == np.float32
    assert s.x.shape == (15,)
    from_z = sampler.sample(z=np.zeros((0, 5), dtype=np.float32))
    assert from_z.curves.shape == (0, 15) and from_z.seed is None


def test_same_seed_same_curves_other_seed_other_curves(sampler: CurveSampler) -> None:
    a = sampler.sample(10, seed=4).curves
    assert np.array_equal(a, sampler.sample(10, seed=4).curves)
    assert not np.array_equal(a, sampler.sample(10, seed=5).curves)
    # No two curves in a batch repeat.
    assert len({row.tobytes() for row in a}) == 10


def test_no_seed_draws_one_and_reports_it(sampler: CurveSampler) -> None:
    first, second = sampler.sample(3), sampler.sample(3)
    assert first.seed is not None and second.seed is not None and first.seed != second.seed
    assert np.array_equal(first.curves, sampler.sample(3, seed=first.seed).curves)


def test_checkpoint_and_trainer_samplers_agree(sampler: CurveSampler) -> None:
    from_trainer = trainer().sampler()
    assert np.array_equal(from_trainer.sample(20, seed=8).curves, sampler.sample(20, seed=8).curves)


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_seed_gives_the_configs_latents(kind: str) -> None:
    """A seed means: latents drawn CHUNK at a time from torch.Generator().manual_seed(seed)."""
    s = CurveSampler.from_checkpoint(trainer(latent=kind).checkpoint())
    z = latent(CHUNK, 5, kind, torch.Generator().manual_seed(77))[:6]
    np.testing.assert_allclose(s.sample(6, seed=77).curves, forward(s, z), rtol=1e-6, atol=1e-7)


def test_first_curves_do_not_depend_on_n(sampler: CurveSampler) -> None:
    assert CHUNK == 16_384
    small = sampler.sample(10, seed=4).curves
    big = sampler.sample(20_000, seed=4).curves  # two chunks, the second partial
    assert big.shape == (20_000, 15)
    # Same latents; a larger matmul may round differently in the last bit.
    np.testing.assert_allclose(big[:10], small, rtol=1e-5, atol=1e-6)
    # Across the chunk boundary too: the second chunk's latents are the same whatever n is.
    just_over = sampler.sample(CHUNK + 10, seed=4).curves
    np.testing.assert_allclose(big[: CHUNK + 10], just_over, rtol=1e-5, atol=1e-6)
    assert not np.allclose(big[CHUNK : CHUNK + 10], big[:10])
    # And for the same n, bit-equal.
    assert np.array_equal(big, sampler.sample(20_000, seed=4).curves)


def test_given_latents_are_used(sampler: CurveSampler) -> None:
    z = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    s = sampler.sample(z=z)
    assert s.seed is None
    assert s.curves.shape == (4, 15) and s.curves.dtype == np.float32
    np.testing.assert_allclose(s.curves, forward(sampler, torch.from_numpy(z)), rtol=1e-6)
    # n may be given when it agrees; a seed is ignored; float64 and tensors are accepted.
    assert np.array_equal(sampler.sample(4, z=z).curves, s.curves)
    with_seed = sampler.sample(seed=3, z=z)
    assert with_seed.seed is None and np.array_equal(with_seed.curves, s.curves)
    np.testing.assert_allclose(sampler.sample(z=z.astype(np.float64)).curves, s.curves)
    np.testing.assert_allclose(sampler.sample(z=torch.from_numpy(z)).curves, s.curves)


def test_given_latents_across_chunks(sampler: CurveSampler) -> None:
    z = np.random.default_rng(1).standard_normal((CHUNK + 3, 5)).astype(np.float32)
    s = sampler.sample(z=z)
    np.testing.assert_allclose(s.curves[-3:], forward(sampler, torch.from_numpy(z[-3:])), rtol=1e-5)


@pytest.mark.parametrize(
    ("z", "match"),
    [
        (np.zeros((4, 3)), r"shape \(n, 5\)"),
        (np.zeros((4, 6)), r"shape \(n, 5\)"),
        (np.zeros(5), r"shape \(n, 5\)"),
        (np.zeros((2, 4, 5)), r"shape \(n, 5\)"),
        (np.full((2, 5), np.nan), "finite"),
        (np.array([[0, 0, np.inf, 0, 0]]), "finite"),
        (np.array([[0, 0, 0, 0, -np.inf]]), "finite"),
    ],
)
def test_bad_latents_are_refused(sampler: CurveSampler, z: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sampler.sample(z=z)


def test_n_disagreeing_with_z_is_refused(sampler: CurveSampler) -> None:
    z = np.zeros((4, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="n=3 disagrees with z's 4 rows"):
        sampler.sample(3, z=z)
    with pytest.raises(ValueError, match="disagrees"):
        sampler.sample(0, z=z)


@pytest.mark.parametrize("n", [-1, 1.5, True, None, "10"])
def test_bad_n_is_refused(sampler: CurveSampler, n: object) -> None:
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        sampler.sample(n, seed=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 2**63, True, 1.0, "1"])
def test_bad_seed_is_refused(sampler: CurveSampler, seed: object) -> None:
    with pytest.raises(ValueError, match="seed must be an integer"):
        sampler.sample(3, seed=seed)  # type: ignore[arg-type]


def test_ema_checkpoint_samples_from_the_average() -> None:
    t = trainer(g_ema=0.5)
    s = CurveSampler.from_checkpoint(t.checkpoint())
    assert t.g_ema is not None
    assert torch.equal(s.g.out.weight, t.g_ema.out.weight)
    assert not torch.equal(s.g.out.weight, t.g.out.weight)


def test_sampler_is_inference_only(sampler: CurveSampler) -> None:
    assert not sampler.g.training
    assert not any(p.requires_grad for p in sampler.g.parameters())


MILLION = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from gan_engine import CurveSampler, load_checkpoint
    from gan_engine.sampling import CHUNK

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # KiB

    s = CurveSampler.from_checkpoint(load_checkpoint(sys.argv[1]))
    s.sample(CHUNK + 1, seed=1)  # warm up: lazy allocations, thread pools
    before = status("VmRSS")
    try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    out = s.sample(1_000_000, seed=0)
    # VmHWM is this process's own peak. (getrusage's ru_maxrss is not: across the
    # vfork + exec that started it, it keeps the pytest parent's peak.)
    peak = status("VmHWM")
    print(json.dumps({
        "shape": list(out.curves.shape),
        "dtype": str(out.curves.dtype),
        "finite": bool(np.isfinite(out.curves).all()),
        "first": out.curves[:3].tolist(),
        "growth_mib": (peak - before) / 1024,
        "output_mib": out.curves.nbytes / 2**20,
    }))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_million_curves_in_bounded_memory(ckpt_path: Path, sampler: CurveSampler) -> None:
    # A fresh process, so the peak RSS measures this sample alone. Peak minus the RSS just
    # before is an upper bound on what sampling added.
    proc = subprocess.run(
        [sys.executable, "-c", MILLION, str(ckpt_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["shape"] == [1_000_000, 15]
    assert report["dtype"] == "float32"
    assert report["finite"]
    # The output is 57 MiB and the two scratch buffers 16 MiB; materialising every hidden
    # activation at once would add 490.
    assert report["growth_mib"] < 120, report
    # The same seed in another process gives the same curves.
    here = sampler.sample(3, seed=0).curves
    np.testing.assert_allclose(
        np.array(report["first"], dtype=np.float32), here, rtol=1e-5, atol=1e-6
    )


def test_loading_leaves_the_global_rng_alone(ckpt_path: Path) -> None:
    # A service loading checkpoints must not shift the random stream of code that shares
    # its process; building models would draw their random init from it.
    ckpt = load_checkpoint(ckpt_path)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    CurveSampler.from_checkpoint(ckpt)
    load_checkpoint(ckpt_path)
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize("layers", [1, 3])
def test_forward_into_matches_forward_exactly(layers: int) -> None:
    # Sampling writes through forward_into; it must be the same arithmetic as training's
    # forward, for full and partial chunks, so curves never depend on the path.
    g = Generator(5, 16, 15, layers)
    scratch = g.scratch(64)
    for rows in (64, 7):
        z = torch.randn(rows, 5, generator=torch.Generator().manual_seed(rows))
        out = torch.empty(rows, 15)
        with torch.inference_mode():
            g.forward_into(z, out, scratch)
            assert torch.equal(out, g(z))


def test_a_wide_generator_samples_in_slices_with_the_same_curves() -> None:
    # hidden 4096: a chunk runs in slices of SCRATCH_FLOATS // 4096 = 512 rows.
    s = CurveSampler.from_checkpoint(trainer(hidden=4_096).checkpoint())
    rows = SCRATCH_FLOATS // 4_096
    n = 2 * rows + 3
    z = latent(CHUNK, 5, "normal", torch.Generator().manual_seed(5))[:n]
    np.testing.assert_allclose(s.sample(n, seed=5).curves, forward(s, z), rtol=1e-5, atol=1e-6)
