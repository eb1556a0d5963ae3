"""Named recipes: "tutorial" is TrainConfig's defaults, "recommended" and "fast" the recipes of
the quality study; all are chosen by name and any field can still be overridden."""

from __future__ import annotations

import pytest

from gan_engine import PRESETS, ConfigError, TrainConfig, Trainer
from gan_engine.config import FAST, RECOMMENDED
from gan_engine.models import Generator

TARGETS = {"w1_a": 0.01, "in_band": 0.99, "resid": 0.01}


def test_tutorial_preset_is_the_default_config() -> None:
    assert TrainConfig.from_preset("tutorial") == TrainConfig()
    assert TrainConfig.from_dict({}) == TrainConfig.from_dict({"preset": "tutorial"})


def test_recommended_preset_sets_its_fields_and_keeps_the_rest() -> None:
    cfg = TrainConfig.from_preset("recommended")
    data = cfg.to_dict()
    for key, value in PRESETS["recommended"].items():
        expected = list(value) if isinstance(value, tuple) else value
        assert data[key] == expected, key
    # The curve's shape is not given to the recipe: same ideas and points as the tutorial.
    assert (cfg.n_ideas, cfg.n_points) == (5, 15)
    assert cfg != TrainConfig()


# The recipes exactly as the quality study measured them (README, "Results"): a change to
# one is a change to the study's claim and must be measured again.
STUDY_RECIPE = {
    "latent": "uniform",
    "loss": "non_saturating",
    "betas": (0.0, 0.9),
    "lr_g": 2e-3,
    "lr_d": 2e-3,
    "lr_schedule": "linear",
    "g_ema": 0.995,
    "ema_warmup": True,
    "batch_size": 128,
    "hidden": 64,
    "d_hidden": 96,
    "g_layers": 2,
    "d_layers": 2,
    "steps": 4_000,
}


def test_the_presets_are_the_studys_recipes() -> None:
    assert list(PRESETS) == ["tutorial", "recommended", "fast"]
    assert dict(PRESETS["tutorial"]) == {}
    assert dict(PRESETS["recommended"]) == STUDY_RECIPE == RECOMMENDED
    assert dict(PRESETS["fast"]) == {**STUDY_RECIPE, "lr_g": 2.5e-3, "lr_d": 2.5e-3, "steps": 2_500}
    assert dict(PRESETS["fast"]) == FAST


@pytest.mark.parametrize("name", ["recommended", "fast"])
def test_a_presets_config_is_the_tutorials_with_the_recipe_over_it(name: str) -> None:
    data = TrainConfig.from_preset(name).to_dict()
    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in PRESETS[name].items()}
    assert data == {**TrainConfig().to_dict(), **recipe}


def test_from_preset_takes_overrides() -> None:
    cfg = TrainConfig.from_preset("fast", seed=9, betas=[0.5, 0.6], steps=10)
    assert (cfg.seed, cfg.betas, cfg.steps, cfg.lr_g) == (9, (0.5, 0.6), 10, 2.5e-3)
    assert TrainConfig.from_preset("tutorial", hidden=8) == TrainConfig(hidden=8)


def test_fields_override_the_preset() -> None:
    cfg = TrainConfig.from_dict({"preset": "recommended", "steps": 300, "seed": 4})
    assert (cfg.steps, cfg.seed) == (300, 4)
    assert cfg.lr_g == PRESETS["recommended"]["lr_g"]


@pytest.mark.parametrize("name", ["Recommended", "", "fastest", None, 3])
def test_unknown_presets_are_refused_by_name(name: object) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"preset": name})
    assert info.value.field == "preset"
    assert info.value.message == f"must be one of tutorial, recommended, fast; got {name!r}"


def test_a_preset_is_checked_like_any_config() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_preset("recommended", lr_g=-1.0)
    assert info.value.field == "lr_g"


def test_presets_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        PRESETS["recommended"]["steps"] = 1  # type: ignore[index]


def test_recommended_generator_is_still_an_unconstrained_mlp() -> None:
    # The recipe may tune training, not wire the curve family into G: its output layer
    # stays a plain linear map over the 15 points.
    g = Trainer(TrainConfig.from_preset("recommended", seed=0, steps=1)).g
    assert isinstance(g, Generator)
    assert g.out.out_features == 15 and g.out.bias is not None


def test_fast_preset_is_recommended_with_a_shorter_faster_schedule() -> None:
    fast, rec = TrainConfig.from_preset("fast"), TrainConfig.from_preset("recommended")
    assert fast.steps < rec.steps and fast.lr_g > rec.lr_g
    same = {"latent", "loss", "betas", "hidden", "d_hidden", "g_layers", "d_layers", "batch_size"}
    assert {k: v for k, v in fast.to_dict().items() if k in same} == {
        k: v for k, v in rec.to_dict().items() if k in same
    }


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["recommended", "fast"])
def test_preset_meets_the_quality_targets(preset: str) -> None:
    """The study's claim on one seed: curves close to indistinguishable from the artist's."""
    result = Trainer(TrainConfig.from_preset(preset, seed=0)).run()
    r = result.last
    assert r is not None
    assert r.w1_a <= TARGETS["w1_a"], r
    assert r.in_band >= TARGETS["in_band"], r
    assert r.resid <= TARGETS["resid"], r
