"""TrainConfig: the tutorial's defaults, and refusals that name the field and the range."""

from __future__ import annotations

import dataclasses
import math

import pytest

from gan_engine import ConfigError, TrainConfig


def test_defaults_are_the_tutorials() -> None:
    c = TrainConfig()
    assert (c.batch_size, c.lr_g, c.lr_d, c.betas) == (64, 1e-4, 1e-4, (0.9, 0.999))
    assert (c.n_ideas, c.n_points, c.hidden, c.steps) == (5, 15, 128, 10_000)
    assert (c.loss, c.latent, c.g_ema, c.seed) == ("minimax", "normal", 0.0, None)


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().steps = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("steps", -1, "[1, 10000000]"),
        ("steps", 0, "[1, 10000000]"),
        ("steps", 1.5, "integer"),
        ("steps", "100", "integer"),
        ("steps", True, "integer"),
        ("batch_size", 0, "[1, 65536]"),
        ("lr_g", 0.0, "(0, 1]"),
        ("lr_d", 2.0, "(0, 1]"),
        ("lr_g", math.nan, "(0, 1]"),
        ("lr_g", "fast", "number"),
        ("betas", (0.9,), "two numbers"),
        ("betas", (0.9, 1.0), "[0, 1)"),
        ("seed", -1, "[0, "),
        ("loss", "wasserstein", "minimax, non_saturating"),
        ("latent", "cauchy", "normal, uniform"),
        ("g_ema", 1.0, "[0, 1)"),
        ("log_every", 0, "[1, "),
        ("checkpoint_every", -1, "[0, "),
    ],
)
def test_invalid_values_name_field_and_range(field: str, value: object, expect: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.field.startswith(field)
    assert expect in str(info.value)
    assert str(info.value).startswith(field)


def test_dict_round_trip_and_unknown_fields() -> None:
    c = TrainConfig(seed=3, steps=50, betas=(0.5, 0.9), loss="non_saturating", g_ema=0.99)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown field") as info:
        TrainConfig.from_dict({"steps": 5, "epochs": 3})
    assert info.value.field == "epochs"
    with pytest.raises(ConfigError):
        TrainConfig.from_dict([1, 2])  # type: ignore[arg-type]
