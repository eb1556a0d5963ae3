"""TrainConfig: the tutorial's defaults, and refusals that name the field and the range."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from gan_engine import ConfigError, TrainConfig, Trainer, checkpoint_from_bytes
from gan_engine.config import MAX_CHECKPOINT_BYTES, MAX_SEED, model_floats
from gan_engine.models import build_models


def test_defaults_are_the_tutorials() -> None:
    c = TrainConfig()
    assert c.batch_size == 64
    assert c.lr_g == 1e-4 and c.lr_d == 1e-4
    assert c.betas == (0.9, 0.999)
    assert c.n_ideas == 5 and c.n_points == 15 and c.hidden == 128
    assert c.steps == 10_000
    assert c.loss == "minimax" and c.latent == "normal"
    assert c.g_ema == 0.0
    assert c.seed is None
    assert c.lr_schedule == "constant"


def test_frozen() -> None:
    c = TrainConfig()
    for f in dataclasses.fields(c):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(c, f.name, getattr(c, f.name))
    # Frozen and hashable: equal configs are interchangeable as keys.
    assert hash(TrainConfig(seed=1)) == hash(TrainConfig(seed=1))


def test_replace_validates_and_leaves_the_original() -> None:
    c = TrainConfig(seed=1)
    assert c.replace(steps=5).steps == 5 and c.steps == 10_000
    with pytest.raises(ConfigError) as info:
        c.replace(steps=0)
    assert info.value.field == "steps"


INT_RANGES = {
    "batch_size": "[1, 65536]",
    "n_ideas": "[1, 1024]",
    "n_points": "[2, 1024]",
    "hidden": "[1, 8192]",
    "steps": "[1, 10000000]",
    "seed": f"[0, {MAX_SEED}]",
    "log_every": "[1, 10000000]",
    "checkpoint_every": "[0, 10000000]",
}


@pytest.mark.parametrize(
    ("field", "value", "error_field", "allowed"),
    [
        # integers: out of range, wrong type, bool, string
        ("steps", -1, "steps", INT_RANGES["steps"]),
        ("steps", 0, "steps", INT_RANGES["steps"]),
        ("steps", 10_000_001, "steps", INT_RANGES["steps"]),
        ("steps", 1.5, "steps", INT_RANGES["steps"]),
        ("steps", 100.0, "steps", INT_RANGES["steps"]),
        ("steps", "100", "steps", INT_RANGES["steps"]),
        ("steps", True, "steps", INT_RANGES["steps"]),
        ("steps", None, "steps", INT_RANGES["steps"]),
        ("batch_size", 0, "batch_size", INT_RANGES["batch_size"]),
        ("batch_size", -64, "batch_size", INT_RANGES["batch_size"]),
        ("batch_size", 65_537, "batch_size", INT_RANGES["batch_size"]),
        ("batch_size", True, "batch_size", INT_RANGES["batch_size"]),
        ("batch_size", "64", "batch_size", INT_RANGES["batch_size"]),
        ("n_ideas", 0, "n_ideas", INT_RANGES["n_ideas"]),
        ("n_points", 1, "n_points", INT_RANGES["n_points"]),
        ("hidden", 8_193, "hidden", INT_RANGES["hidden"]),
        ("hidden", False, "hidden", INT_RANGES["hidden"]),
        ("seed", -1, "seed", INT_RANGES["seed"]),
        ("seed", MAX_SEED + 1, "seed", INT_RANGES["seed"]),
        ("seed", True, "seed", INT_RANGES["seed"]),
        ("seed", "7", "seed", INT_RANGES["seed"]),
        ("log_every", 0, "log_every", INT_RANGES["log_every"]),
        ("checkpoint_every", -1, "checkpoint_every", INT_RANGES["checkpoint_every"]),
        # learning rates: (0, 1]
        ("lr_g", 0.0, "lr_g", "(0, 1]"),
        ("lr_g", 0, "lr_g", "(0, 1]"),
        ("lr_d", 0.0, "lr_d", "(0, 1]"),
        ("lr_g", -1e-4, "lr_g", "(0, 1]"),
        ("lr_g", 1.0000001, "lr_g", "(0, 1]"),
        ("lr_d", 2.0, "lr_d", "(0, 1]"),
        ("lr_g", math.nan, "lr_g", "(0, 1]"),
        ("lr_d", math.nan, "lr_d", "(0, 1]"),
        ("lr_g", math.inf, "lr_g", "(0, 1]"),
        # betas: two numbers, each in [0, 1)
        ("betas", (0.9, 1.0), "betas[1]", "[0, 1)"),
        ("betas", (1.0, 0.999), "betas[0]", "[0, 1)"),
        ("betas", (-0.1, 0.999), "betas[0]", "[0, 1)"),
        ("betas", (0.9, math.nan), "betas[1]", "[0, 1)"),
        ("betas", (0.9,), "betas", "[0, 1)"),
        ("betas", (0.9, 0.99, 0.999), "betas", "[0, 1)"),
        ("betas", 0.9, "betas", "[0, 1)"),
        ("betas", "ab", "betas", "[0, 1)"),
        # choices
        ("loss", "wasserstein", "loss", "minimax, non_saturating"),
        ("loss", None, "loss", "minimax, non_saturating"),
        ("latent", "cauchy", "latent", "normal, uniform"),
        ("lr_schedule", "cosine", "lr_schedule", "constant, linear"),
        # EMA decay: [0, 1)
        ("g_ema", 1.0, "g_ema", "[0, 1)"),
        ("g_ema", -0.1, "g_ema", "[0, 1)"),
        ("g_ema", math.nan, "g_ema", "[0, 1)"),
        # architecture: depth and D's width
        ("g_layers", 0, "g_layers", "[1, 8]"),
        ("d_layers", 9, "d_layers", "[1, 8]"),
        ("d_hidden", -1, "d_hidden", "[0, 8192]"),
        ("ema_warmup", 1, "ema_warmup", "true or false"),
    ],
)
def test_invalid_values_name_field_and_range(
    field: str, value: object, error_field: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == error_field
    assert allowed in err.message
    assert str(err).startswith(f"{error_field}: ")


@pytest.mark.parametrize(
    ("field", "value"), [("lr_g", "fast"), ("lr_d", True), ("g_ema", None), ("betas", (0.9, "x"))]
)
def test_non_numbers_for_float_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match="must be a number") as info:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.field.startswith(field)


@pytest.mark.parametrize(
    "changes",
    [
        {"lr_g": 1.0, "lr_d": 1e-12},
        {"betas": (0.0, 0.0)},
        {"betas": (0.999999, 0.5)},
        {"g_ema": 0.999999},
        {"steps": 1, "batch_size": 1, "n_ideas": 1, "n_points": 2, "hidden": 1},
        {"steps": 10_000_000, "batch_size": 65_536},
        {"hidden": 8_192, "d_hidden": 8_192},
        {"hidden": 512, "g_layers": 8, "d_layers": 8},
        {"seed": 0},
        {"seed": MAX_SEED},
        {"checkpoint_every": 0, "log_every": 1},
        {"loss": "non_saturating", "latent": "uniform", "lr_schedule": "linear"},
    ],
)
def test_boundary_values_are_accepted(changes: dict[str, object]) -> None:
    c = TrainConfig(**changes)  # type: ignore[arg-type]
    for name, value in changes.items():
        assert getattr(c, name) == value


def test_numbers_are_normalised() -> None:
    c = TrainConfig(lr_g=1, lr_d=1, betas=[0, 0.5], g_ema=0)  # type: ignore[arg-type]
    assert type(c.lr_g) is float and type(c.lr_d) is float and type(c.g_ema) is float
    assert c.betas == (0.0, 0.5) and type(c.betas) is tuple
    assert all(type(b) is float for b in c.betas)


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(),
        TrainConfig(seed=3, steps=50, betas=(0.5, 0.9), loss="non_saturating", g_ema=0.99),
        TrainConfig(
            seed=MAX_SEED,
            batch_size=7,
            lr_g=0.3,
            lr_d=2.5e-5,
            n_ideas=2,
            n_points=9,
            hidden=16,
            latent="uniform",
            log_every=3,
            checkpoint_every=0,
            lr_schedule="linear",
        ),
    ],
)
def test_dict_round_trip(config: TrainConfig) -> None:
    data = config.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig.from_dict(data) == config
    # Through real JSON too: betas become a list and must come back as a tuple.
    text = json.dumps(data)
    back = TrainConfig.from_dict(json.loads(text))
    assert back == config and back.betas == config.betas and isinstance(back.betas, tuple)
    assert back.to_dict() == data


def test_from_dict_fills_defaults_and_validates() -> None:
    assert TrainConfig.from_dict({}) == TrainConfig()
    assert TrainConfig.from_dict({"steps": 5}) == TrainConfig(steps=5)
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"lr_d": 0})
    assert info.value.field == "lr_d" and "(0, 1]" in info.value.message


def test_from_dict_refuses_unknown_fields_naming_them() -> None:
    with pytest.raises(ConfigError, match="unknown field") as info:
        TrainConfig.from_dict({"steps": 5, "epochs": 3})
    assert info.value.field == "epochs"
    assert str(info.value).startswith("epochs: ")
    # The message lists what is allowed.
    assert "batch_size" in info.value.message and "lr_schedule" in info.value.message
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert info.value.field == "learning_rate"


@pytest.mark.parametrize("data", [[1, 2], "steps=5", None, 5])
def test_from_dict_refuses_non_objects(data: object) -> None:
    with pytest.raises(ConfigError, match="must be an object") as info:
        TrainConfig.from_dict(data)  # type: ignore[arg-type]
    assert info.value.field == "config"


@pytest.mark.parametrize("field", ["lr_g", "g_ema"])
def test_huge_integers_for_float_fields_raise_config_error(field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(json.loads(f'{{"{field}": 1{"0" * 400}}}'))
    assert info.value.field == field


# ----------------------------------------------------------------------------- model size
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"hidden": 7, "d_hidden": 3, "g_layers": 3, "d_layers": 2, "n_ideas": 2, "n_points": 4},
        {"hidden": 64, "d_hidden": 96, "g_layers": 2, "d_layers": 2},
    ],
)
def test_model_floats_counts_the_models_parameters(changes: dict[str, int]) -> None:
    config = TrainConfig(**changes)  # type: ignore[arg-type]
    g, d = build_models(config, 0)
    assert model_floats(config) == (
        sum(p.numel() for p in g.parameters()),
        sum(p.numel() for p in d.parameters()),
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hidden": 2_048, "g_layers": 2, "d_layers": 2}, "hidden"),
        ({"n_ideas": 1_024, "n_points": 1_024, "hidden": 8_192}, "hidden"),
        ({"hidden": 64, "d_hidden": 4_096, "d_layers": 3}, "d_hidden"),
    ],
)
def test_models_whose_checkpoint_would_not_load_are_refused(
    changes: dict[str, int], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)  # type: ignore[arg-type]
    assert info.value.field == field
    assert "checkpoints are limited to 64 MiB" in info.value.message
    assert "lower hidden, d_hidden, g_layers, d_layers" in info.value.message


def test_the_largest_allowed_models_checkpoint_loads() -> None:
    # The widest deep config the limit admits, with the EMA copy on: its real checkpoint,
    # the largest any run can write, must load again under the same limit.
    def config(width: int) -> TrainConfig:
        return TrainConfig(hidden=width, g_layers=2, d_layers=2, g_ema=0.9, steps=1, seed=0)

    width = 1_000
    while True:
        try:
            config(width + 1)
        except ConfigError:
            break
        width += 1
    trainer = Trainer(config(width))
    trainer.step()
    data = trainer.checkpoint().to_bytes()
    assert MAX_CHECKPOINT_BYTES * 0.9 < len(data) <= MAX_CHECKPOINT_BYTES
    assert checkpoint_from_bytes(data).step == 1


def test_activations_too_large_for_memory_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(batch_size=65_536, hidden=1_024)
    assert info.value.field == "batch_size"
    assert "67,108,864" in info.value.message and "134,217,728" in info.value.message
    TrainConfig(batch_size=32_768, hidden=1_024)  # exactly at the limit
