"""Populations: K GANs with stacked weights and a hand-derived backward pass, checked against
the autograd Trainer (the oracle), for determinism, exact resume and member export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan_engine import (
    PRESETS,
    ConfigError,
    CurveSampler,
    LogRecord,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    checkpoint_from_bytes,
)
from gan_engine.metrics import PREVIEW_CURVES
from gan_engine.population import Population, shape_key, shape_key_of

SHAPES = {
    "tutorial": {},
    "deep_non_saturating": {
        "loss": "non_saturating",
        "latent": "uniform",
        "g_layers": 2,
        "d_layers": 3,
        "hidden": 32,
        "d_hidden": 48,
    },
    "recommended": {
        k: v
        for k, v in TrainConfig.from_preset("recommended").to_dict().items()
        if k not in {"steps", "seed"}
    },
}


def cfg(shape: str = "tutorial", **kw: object) -> TrainConfig:
    base = {"steps": 60, "seed": 7, "log_every": 20, "checkpoint_every": 0, **SHAPES[shape]}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def grads_by_name(pop: Population, i: int) -> dict[str, torch.Tensor]:
    """Member i's latest gradients, named as Trainer's parameters."""
    g = {f"g.{k}": v for k, v in pop.g.member(pop.g.grad, i).items()}
    d = {f"d.{k}": v for k, v in pop.d.member(pop.d.grad, i).items()}
    return {**g, **d}


def trainer_grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, model in (("g", trainer.g), ("d", trainer.d)):
        for name, p in model.named_parameters():
            assert p.grad is not None
            out[f"{prefix}.{name}"] = p.grad
    return out


def assert_close_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float) -> None:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    for key in a:
        if key == "rng.train":
            assert torch.equal(a[key], b[key]), "the random streams diverged"
            continue
        scale = max(1.0, float(b[key].abs().max()))
        err = float((a[key].double() - b[key].double()).abs().max()) / scale
        assert err <= tol, f"{key}: {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("loss", ["minimax", "non_saturating"])
def test_gradients_equal_autograds(shape: str, loss: str) -> None:
    # Three members with their own seeds and hyperparameters, each against its own Trainer,
    # over several steps (so D and G have moved and every layer's ReLUs mix on and off).
    configs = [
        cfg(shape, loss=loss, seed=s, lr_g=lr, lr_d=lr * 2)
        for s, lr in ((1, 1e-4), (2, 3e-4), (3, 1e-3))
    ]
    pop = Population(configs)
    trainers = [Trainer(c) for c in configs]
    for _ in range(5):
        pop.step()
        for t in trainers:
            t.step()
        for i, t in enumerate(trainers):
            expected = trainer_grads(t)
            got = grads_by_name(pop, i)
            for key, value in expected.items():
                scale = float(value.abs().max()) or 1.0
                err = float((got[key] - value).abs().max()) / scale
                assert err < 1e-4, f"member {i} {key}: relative error {err:.2e}"


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_members_losses_and_weights_follow_their_own_trainer_step_by_step(shape: str) -> None:
    # Every step: the member's losses (D's logits) and weights against its own Trainer's, for
    # the shapes that bring the minimax and non-saturating losses, the normal and uniform
    # latents, deeper models, the linear schedule, G's EMA and its warm-up.
    configs = [
        cfg(shape, seed=11, g_ema=0.9, betas=(0.5, 0.99), steps=20),
        cfg(shape, seed=12, g_ema=0.99, lr_g=5e-4, betas=(0.9, 0.999), steps=20),
    ]
    pop = Population(configs)
    trainers = [Trainer(c) for c in configs]
    b, minimax = configs[0].batch_size, configs[0].loss == "minimax"
    for step in range(20):
        pop.step()
        for i, t in enumerate(trainers):
            d_loss, g_loss, _ = t.step()
            assert pop._logits is not None
            real, fake = pop._logits[i, :b, 0], pop._logits[i, b:, 0]
            got_d = F.softplus(-real).mean() + F.softplus(fake).mean()
            got_g = -F.softplus(fake).mean() if minimax else F.softplus(-fake).mean()
            for name, got, want in (("d_loss", got_d, d_loss), ("g_loss", got_g, g_loss)):
                assert abs(float(got - want)) < 1e-5, f"member {i} step {step + 1} {name}"
            assert_close_states(pop.member_checkpoint(i).tensors, t.checkpoint().tensors, 2e-5)
    # The logged figures agree too (losses to rounding, over the same evaluation batch).
    records = pop.evaluate()
    for i, t in enumerate(trainers):
        want, got = t.evaluate().to_dict(), records[i].to_dict()
        assert want.keys() == got.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_members_follow_their_own_trainer_to_float_rounding(shape: str) -> None:
    # Members differ in seed, learning rate, betas and EMA decay; "recommended" brings the
    # linear schedule and the EMA warm-up. With beta1 = 0, Adam moves a weight whose gradient
    # is at rounding level by +-lr whatever its size, so the two kernels' rounding shows up
    # as lr-sized differences within a few steps: that case is covered by the gradient test.
    configs = [
        cfg(shape, seed=11, g_ema=0.9, betas=(0.5, 0.99)),
        cfg(shape, seed=12, g_ema=0.99, lr_g=5e-4, betas=(0.9, 0.999)),
    ]
    pop = Population(configs)
    pop.run()
    for i, c in enumerate(configs):
        trainer = Trainer(c)
        trainer.run()
        assert_close_states(pop.member_checkpoint(i).tensors, trainer.checkpoint().tensors, 2e-5)


def test_a_member_is_the_same_in_any_population() -> None:
    alone = Population([cfg(seed=5, steps=100, lr_g=5e-4)])
    together = Population([cfg(seed=s, steps=100, lr_g=1e-4 * s) for s in (3, 4, 5, 6)])
    alone.run()
    together.run()
    assert_close_states(
        together.member_checkpoint(2).tensors, alone.member_checkpoint(0).tensors, 1e-6
    )


def test_same_seeds_give_bit_identical_members() -> None:
    configs = [cfg("deep_non_saturating", seed=s, g_ema=0.99) for s in (1, 2, 3)]
    a, b = Population(configs), Population(configs)
    a.run()
    b.run()
    for i in range(3):
        ta, tb = a.member_checkpoint(i).tensors, b.member_checkpoint(i).tensors
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
    other = Population([cfg("deep_non_saturating", seed=9, g_ema=0.99)])
    other.run()
    assert not torch.equal(
        other.member_checkpoint(0).tensors["g.out.weight"],
        a.member_checkpoint(0).tensors["g.out.weight"],
    )


@pytest.mark.parametrize("shape", ["tutorial", "recommended"])
def test_a_population_resumes_bit_exactly_from_its_member_checkpoints(shape: str) -> None:
    configs = [
        cfg(shape, seed=s, steps=120, log_every=30, betas=betas)
        for s, betas in ((1, (0.0, 0.9)), (2, (0.5, 0.99)))
    ]
    straight = Population(configs)
    straight.run()

    first = Population([c.replace(steps=120) for c in configs])
    saved = []
    first.run(should_stop=lambda: first.step_count >= 60, on_checkpoint=saved.append)
    assert first.step_count == 60
    # Through bytes, as a job's checkpoints travel: the loaded members resume exactly.
    members = [checkpoint_from_bytes(c.to_bytes()) for c in saved[-1].values()]
    resumed = Population.from_checkpoints(members)
    resumed.run()
    for i in range(2):
        a, b = straight.member_checkpoint(i).tensors, resumed.member_checkpoint(i).tensors
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, different


def test_a_member_exports_as_an_ordinary_checkpoint() -> None:
    pop = Population([cfg("recommended", seed=s, steps=40) for s in (1, 2)])
    pop.run()
    ckpt = checkpoint_from_bytes(pop.member_checkpoint(1).to_bytes())  # the loader's checks
    assert ckpt.step == 40 and ckpt.config.seed == 2 and ckpt.metrics is not None
    # It samples like the member, and resumes as a single job with Trainer.
    z = torch.rand(8, 5) * 2 - 1
    expected = pop.sampler(1).sample(z=z.numpy()).curves
    got = CurveSampler.from_checkpoint(ckpt).sample(z=z.numpy()).curves
    assert (abs(expected - got) < 1e-6).all()
    trainer = Trainer.from_checkpoint(
        ckpt.__class__(ckpt.config.replace(steps=60), 40, ckpt.tensors, ckpt.metrics)
    )
    trainer.run()
    assert trainer.step_count == 60


VARIED: list[dict[str, object]] = [
    {},
    {"hidden": 64},
    {"g_ema": 0.5},
    {"g_ema": 0},
    {"seed": 3, "lr_g": 1e-3, "lr_d": 2e-3, "betas": [0.0, 0.9]},
    {"loss": "non_saturating", "latent": "uniform", "lr_schedule": "linear"},
    {"steps": 123, "log_every": 7, "checkpoint_every": 0},
    {"d_layers": 3, "d_hidden": 48, "ema_warmup": True, "batch_size": 32},
]


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_shape_key_of_plain_data_agrees_with_the_built_configs(preset: str | None) -> None:
    # The claim compares stored configs (plain dicts) without building them: the same key as
    # the built config's, for partial data (what from_dict fills in) and for complete data.
    for varied in VARIED:
        data = {**varied, **({"preset": preset} if preset else {})}
        built = TrainConfig.from_dict(dict(data))
        assert shape_key_of(data) == shape_key(built), data
        assert shape_key_of(built.to_dict()) == shape_key(built), data


def test_only_member_fields_leave_the_shape_alone() -> None:
    # The seed, learning rates, betas and the EMA's decay (not its presence) may differ.
    tutorial = shape_key_of({})
    assert shape_key_of({"seed": 3, "lr_g": 1e-3, "lr_d": 2e-3, "betas": [0.0, 0.9]}) == tutorial
    assert shape_key_of({"g_ema": 0.5}) == shape_key_of({"g_ema": 0.9}) != tutorial
    for varied in VARIED[5:]:
        assert shape_key_of(varied) != tutorial, varied
    assert shape_key_of({"preset": "recommended"}) != tutorial


def test_members_must_share_a_shape_and_the_error_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        Population([cfg(seed=1), cfg(seed=2, hidden=64)])
    assert info.value.field == "members.1.hidden"
    with pytest.raises(ConfigError):
        Population([])
    Population([cfg(seed=1, lr_g=1e-3, betas=(0.0, 0.9), g_ema=0.0), cfg(seed=2)])


def test_a_diverging_member_leaves_and_the_others_train_on() -> None:
    pop = Population([cfg(seed=s) for s in (1, 2, 3)])
    pop.step()
    pop.g.weights[-1][1].fill_(float("nan"))  # member 1 blows up
    records = []
    pop.run(on_log=records.append)
    assert set(pop.failed) == {1} and "diverged" in pop.failed[1]
    assert pop.live == [0, 2]
    assert all(len(batch) == 2 for batch in records)
    assert [c.config.seed for c in pop.checkpoints().values()] == [1, 3]
    # Nothing of the failed member reaches the others: they are what they would be without it.
    clean = Population([cfg(seed=s) for s in (1, 2, 3)])
    clean.run()
    for i in (0, 2):
        a, b = pop.member_checkpoint(i).tensors, clean.member_checkpoint(i).tensors
        assert all(torch.equal(a[k], b[k]) for k in a)

    alone = Population([cfg(seed=4)])
    alone.step()
    alone.g.weights[-1][0].fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step"):
        alone.run()


def test_a_dropped_member_stops_reporting_and_a_run_with_none_left_stops() -> None:
    pop = Population([cfg(seed=s, steps=60) for s in (1, 2)])
    logged: list[dict] = []

    def should_stop() -> bool:
        if pop.step_count == 20:
            pop.drop(0, "cancelled")
        return False

    result = pop.run(on_log=logged.append, should_stop=should_stop)
    assert not result.stopped and result.step == 60
    assert [sorted(batch) for batch in logged] == [[0, 1], [1], [1]]
    assert list(pop.checkpoints()) == [1] and pop.failed == {0: "cancelled"}

    lonely = Population([cfg(seed=3, steps=60)])
    # Dropped from inside the hook, which answers "go on": the run stops as none is left.
    result = lonely.run(should_stop=lambda: lonely.step_count == 10 and bool(lonely.drop(0, "x")))
    assert result.stopped and result.step == 10


def test_a_member_leaves_with_its_record_and_checkpoint_of_this_step() -> None:
    pop = Population([cfg(seed=s, steps=60) for s in (1, 2)])
    logged: list[dict[int, LogRecord]] = []
    left: list[tuple[LogRecord | None, object]] = []

    def should_stop() -> bool:
        if pop.step_count == 25:
            left.append(pop.leave(0, "cancelled"))
        return False

    result = pop.run(on_log=logged.append, should_stop=should_stop)
    assert not result.stopped and result.step == 60
    ((record, ckpt),) = left
    assert record is not None and record.step == 25  # logged at 20; moved since
    assert (
        ckpt is not None
        and ckpt.step == 25
        and ckpt.metrics == {k: v for k, v in record.to_dict().items() if k != "step"}
    )
    assert pop.failed == {0: "cancelled"} and [sorted(b) for b in logged] == [[0, 1], [1], [1]]
    # Right after a logged step there is nothing new to record.
    again = Population([cfg(seed=3, steps=60)])
    again.run(should_stop=lambda: again.step_count >= 20)
    record, ckpt = again.leave(0, "cancelled")
    assert record is None and ckpt is not None and ckpt.step == 20
    # The last member leaving ends a run.
    alone = Population([cfg(seed=4, steps=60)])
    result = alone.run(should_stop=lambda: alone.step_count == 5 and not alone.leave(0, "x"))
    assert result.stopped and result.step == 5 and alone.checkpoints() == {}


def test_a_member_that_leaves_diverged_fails_instead() -> None:
    pop = Population([cfg(seed=s) for s in (1, 2)])
    pop.step()
    pop.g.weights[-1][1].fill_(float("nan"))
    assert pop.leave(1, "cancelled") == (None, None)
    assert "diverged" in pop.failed[1] and pop.live == [0]
    alone = Population([cfg(seed=3)])
    alone.step()
    alone.g.weights[-1][0].fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 1"):
        alone.leave(0, "cancelled")


@pytest.mark.parametrize("emas", [(0.0, 0.0), (0.9, 0.99)])
def test_a_members_preview_is_its_trainers_first_evaluation_curves(
    emas: tuple[float, float],
) -> None:
    # Trainer is the oracle: the same member, the same first rows of its evaluation batch,
    # drawn by the generator it samples with (the EMA one where there is one).
    configs = [cfg(seed=3, g_ema=emas[0]), cfg(seed=4, g_ema=emas[1])]
    pop = Population(configs)
    with pytest.raises(RuntimeError, match="evaluate"):
        pop.preview(0)
    pop.run()
    for i, c in enumerate(configs):
        trainer = Trainer(c)
        trainer.run()
        got, want = torch.tensor(pop.preview(i)), torch.tensor(trainer.preview())
        assert got.shape == want.shape == (PREVIEW_CURVES, c.n_points)
        assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
        # Each frame is the same latent points: the preview is the start of the batch (drawn
        # with the whole batch: a 5-row product may round differently from a 2 048-row one).
        sampler = trainer.sampling_model()
        with torch.inference_mode():
            assert torch.equal(want, sampler(trainer.eval_z)[:PREVIEW_CURVES])


@pytest.mark.parametrize("shape", ["tutorial", "recommended"])
def test_training_in_chunks_of_members_equals_one_pass(shape: str) -> None:
    # A large population trains a few members a pass (cache-sized); the passes write their
    # members' slices of the same buffers, so the result is the one-pass result.
    configs = [cfg(shape, seed=s, steps=30, lr_g=1e-4 * s) for s in range(1, 6)]
    whole, chunked = Population(configs, chunk=5), Population(configs, chunk=2)
    assert (whole.chunk, chunked.chunk) == (5, 2)
    whole.run()
    chunked.run()
    for i in range(5):
        assert_close_states(
            chunked.member_checkpoint(i).tensors, whole.member_checkpoint(i).tensors, 1e-6
        )
        got, want = chunked.last_records[i], whole.last_records[i]
        assert got is not None and want is not None
        assert got.to_dict() == pytest.approx(want.to_dict(), rel=1e-5, abs=1e-6)


def test_chunks_are_even_and_a_large_population_is_chunked_on_a_cpu() -> None:
    # 64 tutorial members fall out of a core's cache in one pass; at most 35 fit a pass.
    assert Population([cfg(seed=s) for s in range(64)]).chunk == 32
    assert Population([cfg(seed=1)]).chunk == 1
    assert Population([cfg(seed=s) for s in range(7)], chunk=3).chunk == 3  # 3, 3, 1


@pytest.mark.parametrize("latent", ["normal", "uniform"])
def test_batched_draws_have_the_training_distribution_and_shapes(latent: str) -> None:
    # The device draw mode (a GPU's default), selectable on the CPU: all members' offsets
    # and latents from one generator, in two calls.
    k, b = 16, 64
    pop = Population([cfg(seed=s, latent=latent) for s in range(k)], draws="batched")
    offsets, z = pop._draw()
    assert offsets.shape == (k, b, 1) and z.shape == (k, b, 5)
    assert float(offsets.min()) >= 0.0 and float(offsets.max()) < 1.0
    assert float(offsets.mean()) == pytest.approx(0.5, abs=0.03)  # U(0, 1): sd 0.289/32
    if latent == "normal":
        assert float(z.mean()) == pytest.approx(0.0, abs=0.05)
        assert float(z.std()) == pytest.approx(1.0, abs=0.05)
    else:
        assert float(z.min()) >= -1.0 and float(z.max()) <= 1.0
        assert float(z.std()) == pytest.approx(3**-0.5, abs=0.03)
    # Members draw different batches, and the next step draws afresh.
    assert not torch.equal(z[0], z[1])
    first = z.clone()
    assert not torch.equal(pop._draw()[1], first)
    # Not each member's own stream: those stay where they started.
    assert torch.equal(pop.rngs[0].get_state(), Population([cfg(seed=0)]).rngs[0].get_state())


def test_batched_draws_train_deterministically_and_resume_on_their_schedule() -> None:
    configs = [cfg(seed=s, steps=40) for s in (1, 2, 3)]
    a, b = Population(configs, draws="batched"), Population(configs, draws="batched")
    a.run()
    b.run()
    exact = Population(configs)
    exact.run()
    for i in range(3):
        ta, tb = a.member_checkpoint(i).tensors, b.member_checkpoint(i).tensors
        assert all(torch.equal(ta[key], tb[key]) for key in ta)
        assert not torch.equal(
            ta["g.out.weight"], exact.member_checkpoint(i).tensors["g.out.weight"]
        )
        record = a.last_records[i]
        assert record is not None and record.step == 40
    resumed = Population.from_checkpoints(
        [a.member_checkpoint(i) for i in range(3)], draws="batched"
    )
    assert resumed.draws == "batched" and resumed.step_count == 40
    again = Population.from_checkpoints([b.member_checkpoint(i) for i in range(3)], draws="batched")
    assert torch.equal(resumed._draw()[1], again._draw()[1])


def test_an_unknown_draw_mode_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="exact, batched") as err:
        Population([cfg()], draws="fast")
    assert err.value.field == "draws"


@pytest.mark.parametrize("lrs", [(5e-4, 5e-4), (5e-4, 2e-4)])
def test_members_sharing_their_optimizer_settings_follow_their_trainers(
    lrs: tuple[float, float],
) -> None:
    # One learning rate and betas for all (torch's fused Adam over both models at once), or
    # one per model (over G's and D's parts of the buffer in turn): the oracle still holds.
    configs = [
        cfg("recommended", seed=s, lr_g=lrs[0], lr_d=lrs[1], betas=(0.5, 0.99)) for s in (1, 2)
    ]
    pop = Population(configs)
    pop.run()
    for i, c in enumerate(configs):
        trainer = Trainer(c)
        trainer.run()
        assert_close_states(pop.member_checkpoint(i).tensors, trainer.checkpoint().tensors, 2e-5)
