"""The reference trainer (autograd) and the engine's one loop through it: order of updates,
hooks, determinism, exact resume and convergence."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gan_engine import (
    Checkpoint,
    Discriminator,
    Generator,
    LogRecord,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    artist_works,
    load_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]


def small(**kw: object) -> TrainConfig:
    base = {"steps": 60, "seed": 7, "log_every": 20, "checkpoint_every": 0}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer.checkpoint().tensors


def test_seed_none_draws_and_records_a_seed() -> None:
    a, b = Trainer(TrainConfig(seed=None)), Trainer(TrainConfig(seed=None))
    assert a.config.seed is not None and b.config.seed is not None
    assert a.config.seed != b.config.seed


def test_same_seed_is_bit_identical_and_other_seed_differs() -> None:
    runs = []
    for seed in (7, 7, 8):
        t = Trainer(small(seed=seed))
        logs: list[LogRecord] = []
        t.run(on_log=logs.append)
        runs.append((weights(t), logs))
    (w1, l1), (w2, l2), (w3, _) = runs
    assert l1 == l2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not torch.equal(w1["g.out.weight"], w3["g.out.weight"])


def test_training_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Trainer(small()).run()
    assert torch.equal(torch.rand(3), expected)


def test_g_step_uses_current_d_and_d_step_uses_detached_fakes() -> None:
    """One step equals the tutorial's order written out by hand with two forward passes."""
    t = Trainer(small(seed=3))
    ref = Trainer(small(seed=3))
    t.step()

    cfg = ref.config
    real = artist_works(cfg.batch_size, ref.x, ref.rng)
    z = torch.randn(cfg.batch_size, cfg.n_ideas, generator=ref.rng)
    fake = ref.g(z)
    g_loss = -F.softplus(ref.d(fake)).mean()  # mean(log(1 - D(G(z))))
    ref.opt_g.zero_grad()
    g_loss.backward()
    ref.opt_g.step()
    d_loss = F.softplus(-ref.d(real)).mean() + F.softplus(ref.d(fake.detach())).mean()
    ref.opt_d.zero_grad()
    d_loss.backward()
    ref.opt_d.step()

    for name, p in t.g.named_parameters():
        torch.testing.assert_close(p, dict(ref.g.named_parameters())[name], rtol=1e-5, atol=1e-7)
    for name, p in t.d.named_parameters():
        torch.testing.assert_close(p, dict(ref.d.named_parameters())[name], rtol=1e-5, atol=1e-7)


def test_run_logs_every_log_every_and_at_the_end() -> None:
    logs: list[LogRecord] = []
    Trainer(small(steps=50, log_every=20)).run(on_log=logs.append)
    assert [r.step for r in logs] == [20, 40, 50]
    r = logs[-1]
    assert r.d_score == -r.d_loss
    assert 0.0 <= r.d_accuracy <= 1.0 and 0.0 <= r.in_band <= 1.0
    assert all(math.isfinite(v) for v in r.to_dict().values())


def test_checkpoint_hook_every_n_steps_and_at_the_end() -> None:
    seen: list[int] = []
    Trainer(small(steps=50, checkpoint_every=20)).run(on_checkpoint=lambda c: seen.append(c.step))
    assert seen == [20, 40, 50]


def test_should_stop_ends_between_steps_with_a_final_log_and_checkpoint() -> None:
    t = Trainer(small(steps=1000, log_every=100))
    logs: list[LogRecord] = []
    ckpts: list[Checkpoint] = []
    result = t.run(
        on_log=logs.append, on_checkpoint=ckpts.append, should_stop=lambda: t.step_count >= 37
    )
    assert result.stopped and result.step == 37
    assert [c.step for c in ckpts] == [37]
    assert logs[-1].step == 37


def test_should_checkpoint_saves_at_the_next_step() -> None:
    t = Trainer(small(steps=30))
    asked = {"at": 10}
    seen: list[int] = []

    def should_checkpoint() -> bool:
        return t.step_count == asked["at"]

    t.run(on_checkpoint=lambda c: seen.append(c.step), should_checkpoint=should_checkpoint)
    assert seen == [10, 30]


def test_non_finite_losses_fail_naming_the_step() -> None:
    t = Trainer(small(steps=100, log_every=10))
    for _ in range(12):
        t.step()
    with torch.no_grad():
        t.g.out.weight.fill_(float("nan"))
    ckpts: list[Checkpoint] = []
    with pytest.raises(TrainingDiverged, match="step 20") as info:
        t.run(on_checkpoint=ckpts.append)
    assert info.value.step == 20
    assert ckpts == []  # no checkpoint of diverged weights is ever written


def test_ema_tracks_generator_and_is_used_for_sampling() -> None:
    t = Trainer(small(g_ema=0.9, steps=40))
    t.run()
    assert t.g_ema is not None
    ema, live = t.g_ema.out.weight, t.g.out.weight
    assert not torch.equal(ema, live)
    assert t.sampling_model() is t.g_ema
    s = t.sampler().sample(5, seed=1)
    assert s.curves.shape == (5, 15)


@pytest.mark.parametrize("loss,latent", [("non_saturating", "normal"), ("minimax", "uniform")])
def test_variants_train(loss: str, latent: str) -> None:
    logs: list[LogRecord] = []
    Trainer(small(loss=loss, latent=latent)).run(on_log=logs.append)
    assert len(logs) == 3 and all(math.isfinite(r.d_loss) for r in logs)


def test_one_intra_op_thread_while_running_and_restored_after() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    Trainer(small(steps=20, log_every=10)).run(
        on_log=lambda r: seen.append(torch.get_num_threads())
    )
    assert seen == [1, 1]
    assert torch.get_num_threads() == before


RESUME_SCRIPT = """
import sys
from gan_engine import Trainer, load_checkpoint
t = Trainer.from_checkpoint(load_checkpoint(sys.argv[1]))
t.run(on_checkpoint=lambda c: c.save(sys.argv[2]))
"""


@pytest.mark.parametrize("preset", ["tutorial", "recommended"])
def test_exact_resume_in_a_fresh_process(tmp_path: Path, preset: str) -> None:
    """200 steps straight == 100 steps, checkpoint, load in a new process, 100 more.
    The recommended recipe adds a learning-rate schedule that must resume exactly too."""
    cfg = TrainConfig.from_preset(
        preset, steps=200, seed=11, log_every=50, checkpoint_every=0, g_ema=0.99
    )
    straight = Trainer(cfg)
    straight.run()
    expected = straight.checkpoint()

    first = Trainer(cfg)
    first.run(
        should_stop=lambda: first.step_count >= 100,
        on_checkpoint=lambda c: c.save(tmp_path / "half.safetensors"),
    )
    assert load_checkpoint(tmp_path / "half.safetensors").step == 100
    subprocess.run(
        [sys.executable, "-c", RESUME_SCRIPT, tmp_path / "half.safetensors", tmp_path / "end.st"],
        check=True,
        cwd=ROOT,
    )
    resumed = load_checkpoint(tmp_path / "end.st")
    assert resumed.step == 200
    assert set(resumed.tensors) == set(expected.tensors)
    for name, t in expected.tensors.items():
        assert torch.equal(resumed.tensors[name], t), name
    assert resumed.metrics == expected.metrics


@pytest.mark.slow
def test_tutorial_config_converges_in_10000_steps() -> None:
    """The tutorial's recipe, untouched, reaches its equilibrium and draws good curves."""
    trainer = Trainer(TrainConfig(seed=1))
    result = trainer.run()
    r = result.last
    assert r is not None and result.step == 10_000
    assert abs(r.d_accuracy - 0.5) <= 0.05, r
    assert abs(r.d_score - (-2 * math.log(2))) <= 0.06, r
    assert r.w1_a < 0.07, r
    assert r.in_band > 0.85, r


def test_one_layer_models_keep_the_tutorials_parameters_and_depth_adds_layers() -> None:
    # Depth is opt-in: the tutorial's models keep their names, shapes and initialisation.
    g, d = Generator(5, 8, 15), Discriminator(15, 8)
    assert set(g.state_dict()) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    assert set(d.state_dict()) == set(g.state_dict())
    deep = Generator(5, 8, 15, layers=3)
    assert [k for k in deep.state_dict() if k.startswith("extra.")] == [
        "extra.0.weight",
        "extra.0.bias",
        "extra.1.weight",
        "extra.1.bias",
    ]
    z = torch.randn(4, 5)
    h = z
    for layer in (deep.hidden, *deep.extra):
        h = torch.relu(layer(h))
    torch.testing.assert_close(deep(z), deep.out(h))


def test_ema_warmup_follows_g_closely_at_first() -> None:
    # With warmup the first updates use decay (1 + step) / (10 + step), not 0.999.
    plain = Trainer(small(g_ema=0.999, steps=5))
    warm = Trainer(small(g_ema=0.999, steps=5, ema_warmup=True))
    for t in (plain, warm):
        for _ in range(5):
            t.step()
    assert torch.equal(plain.g.out.weight, warm.g.out.weight)  # training itself is untouched
    lag = {
        name: (t.g_ema.out.weight - t.g.out.weight).abs().mean().item()  # type: ignore[union-attr]
        for name, t in (("plain", plain), ("warm", warm))
    }
    assert lag["warm"] < lag["plain"] / 2, lag
