"""TrainConfig: the tutorial's defaults, and refusals that name the field and the range."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import pytest

from gan_engine import ConfigError, TrainConfig, Trainer, checkpoint_from_bytes
from gan_engine.config import (
    DEFAULT_CONFIG,
    DEFAULT_PRESET,
    LATENTS,
    LOSSES,
    LR_SCHEDULES,
    MAX_ACTIVATION_FLOATS,
    MAX_CHECKPOINT_BYTES,
    MAX_SEED,
    RESUME_MUTABLE,
    SWEEPABLE,
    FieldSpec,
    field_specs,
    json_schema_properties,
    model_floats,
    resolve_preset,
)
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


# ------------------------------------------------------------------ one declaration per field
TUTORIAL = {
    "batch_size": 64,
    "lr_g": 1e-4,
    "lr_d": 1e-4,
    "betas": [0.9, 0.999],
    "n_ideas": 5,
    "n_points": 15,
    "hidden": 128,
    "steps": 10_000,
    "seed": None,
    "loss": "minimax",
    "latent": "normal",
    "g_ema": 0.0,
    "log_every": 100,
    "checkpoint_every": 1_000,
    "lr_schedule": "constant",
    "d_hidden": 0,
    "g_layers": 1,
    "d_layers": 1,
    "ema_warmup": False,
}


def test_every_default_is_the_tutorials_in_declaration_order() -> None:
    assert list(TrainConfig().to_dict().items()) == list(TUTORIAL.items())
    assert TrainConfig() == DEFAULT_CONFIG
    # The dataclass's own defaults, before __post_init__ sees them.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert defaults == {**TUTORIAL, "betas": (0.9, 0.999)}


# Every integer field's range: both ends are accepted, one past either end is refused.
INT_BOUNDS = {
    "batch_size": (1, 65_536),
    "n_ideas": (1, 1_024),
    "n_points": (2, 1_024),
    "hidden": (1, 8_192),
    "steps": (1, 10_000_000),
    "seed": (0, MAX_SEED),
    "log_every": (1, 10_000_000),
    "checkpoint_every": (0, 10_000_000),
    "d_hidden": (0, 8_192),
    "g_layers": (1, 8),
    "d_layers": (1, 8),
}


@pytest.mark.parametrize("name", INT_BOUNDS)
def test_integer_fields_take_both_ends_of_their_range_and_nothing_past_them(name: str) -> None:
    lo, hi = INT_BOUNDS[name]
    for value in (lo, hi):
        assert getattr(TrainConfig(**{name: value}), name) == value  # type: ignore[arg-type]
    for value in (lo - 1, hi + 1):
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{name: value})  # type: ignore[arg-type]
        assert (info.value.field, info.value.message) == (
            name,
            f"must be in [{lo}, {hi}], got {value}",
        )
    for value in (True, float(lo), str(lo)):
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{name: value})  # type: ignore[arg-type]
        assert info.value.message == f"must be an integer in [{lo}, {hi}], got {value!r}"


# Every number field's range, with the values just inside and just outside each end.
FLOAT_BOUNDS = {
    "lr_g": ("(0, 1]", [5e-324, 1.0, 1], [0.0, 0, -5e-324, 1.0000000000000002, 2]),
    "lr_d": ("(0, 1]", [5e-324, 1.0, 1], [0.0, 0, -5e-324, 1.0000000000000002, 2]),
    "g_ema": ("[0, 1)", [0.0, 0, 0.9999999999999999], [-5e-324, 1.0, 1, 2.0]),
}


@pytest.mark.parametrize("name", FLOAT_BOUNDS)
def test_number_fields_take_their_range_open_or_closed_at_each_end(name: str) -> None:
    allowed, good, bad = FLOAT_BOUNDS[name]
    for value in good:
        got = getattr(TrainConfig(**{name: value}), name)  # type: ignore[arg-type]
        assert got == value and type(got) is float
    for value in [*bad, math.inf, -math.inf]:
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{name: value})  # type: ignore[arg-type]
        assert (info.value.field, info.value.message) == (
            name,
            f"must be in {allowed}, got {value!r}",
        )
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: "0.5"})  # type: ignore[arg-type]
    assert info.value.message == "must be a number, got '0.5'"


@pytest.mark.parametrize("index", [0, 1])
def test_each_beta_takes_zero_up_to_but_not_one(index: int) -> None:
    def betas(value: object) -> tuple[object, object]:
        return (value, 0.5) if index == 0 else (0.5, value)

    for value in (0, 0.0, 0.9999999999999999):
        assert TrainConfig(betas=betas(value)).betas[index] == value  # type: ignore[arg-type]
    for value in (-5e-324, 1.0, 1, math.nan, False):
        with pytest.raises(ConfigError) as info:
            TrainConfig(betas=betas(value))  # type: ignore[arg-type]
        assert info.value.field == f"betas[{index}]"
        if value is False:
            assert info.value.message == "must be a number, got False"
        else:
            assert info.value.message == f"must be in [0, 1), got {value!r}"


@pytest.mark.parametrize("value", [(0.5,), (0.5, 0.5, 0.5), [], 0.5, "ab", None, {0: 0.5, 1: 0.5}])
def test_betas_must_be_a_pair(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(betas=value)  # type: ignore[arg-type]
    assert (info.value.field, info.value.message) == (
        "betas",
        f"must be two numbers in [0, 1), got {value!r}",
    )


def test_a_list_of_betas_becomes_a_tuple_of_floats() -> None:
    c = TrainConfig(betas=[0, 1e-3])  # type: ignore[arg-type]
    assert c.betas == (0.0, 1e-3) and type(c.betas) is tuple
    assert [type(b) for b in c.betas] == [float, float]
    assert TrainConfig.from_dict({"betas": [0.25, 0.75]}).betas == (0.25, 0.75)


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("loss", ("minimax", "non_saturating")),
        ("latent", ("normal", "uniform")),
        ("lr_schedule", ("constant", "linear")),
    ],
)
def test_choice_fields_take_exactly_their_names(name: str, allowed: tuple[str, ...]) -> None:
    assert (LOSSES, LATENTS, LR_SCHEDULES)[["loss", "latent", "lr_schedule"].index(name)] == allowed
    for value in allowed:
        assert getattr(TrainConfig(**{name: value}), name) == value  # type: ignore[arg-type]
    for value in (allowed[0].upper(), "", None, 1):
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{name: value})  # type: ignore[arg-type]
        assert (info.value.field, info.value.message) == (
            name,
            f"must be one of {', '.join(allowed)}; got {value!r}",
        )


def test_ema_warmup_is_a_bool() -> None:
    assert TrainConfig(ema_warmup=True).ema_warmup is True
    assert TrainConfig(ema_warmup=False).ema_warmup is False
    for value in (1, 0, "true", None):
        with pytest.raises(ConfigError) as info:
            TrainConfig(ema_warmup=value)  # type: ignore[arg-type]
        assert (info.value.field, info.value.message) == (
            "ema_warmup",
            f"must be true or false, got {value!r}",
        )


def test_only_the_seed_may_be_none() -> None:
    assert TrainConfig(seed=None).seed is None and TrainConfig(seed=7).seed == 7
    for f in dataclasses.fields(TrainConfig):
        if f.name == "seed":
            continue
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{f.name: None})  # type: ignore[arg-type]
        assert info.value.field == f.name


def test_fields_are_checked_in_declaration_order() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(batch_size=0, lr_g=0.0, ema_warmup=None)  # type: ignore[arg-type]
    assert info.value.field == "batch_size"
    with pytest.raises(ConfigError) as info:
        TrainConfig(d_layers=0, ema_warmup=None)  # type: ignore[arg-type]
    assert info.value.field == "d_layers"


def test_the_error_says_field_then_message() -> None:
    err = ConfigError("steps", "must be positive")
    assert isinstance(err, ValueError)
    assert (err.field, err.message, str(err)) == (
        "steps",
        "must be positive",
        "steps: must be positive",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # Long strings and bytes keep their two ends, 80 characters in all.
        ("x" * 200, repr("x" * 37 + "..." + "x" * 38)),
        (b"y" * 200, "b'" + "y" * 36 + "..." + "y" * 38 + "'"),
        ("z" * 78, repr("z" * 78)),
        # Lists show 8 items and 3 levels.
        (list(range(20)), "[0, 1, 2, 3, 4, 5, 6, 7, ...]"),
        (list(range(8)), "[0, 1, 2, 3, 4, 5, 6, 7]"),
        ([[[[[1]]]]], "[[[[...]]]]"),
        ([[[1]]], "[[[1]]]"),
    ],
)
def test_hostile_values_are_quoted_cut_short(value: object, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(loss=value)  # type: ignore[arg-type]
    assert info.value.message == f"must be one of minimax, non_saturating; got {shown}"


# What service's OpenAPI document published before it was generated from the fields: kept
# here as a literal so that the generated schema can only change on purpose.
def _unit(*, lo_open: bool = False, hi_open: bool = False) -> dict[str, object]:
    return {
        "type": "number",
        "exclusiveMinimum" if lo_open else "minimum": 0,
        "exclusiveMaximum" if hi_open else "maximum": 1,
    }


def _int(lo: int, hi: int) -> dict[str, object]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


SCHEMA = {
    "batch_size": _int(1, 65_536),
    "lr_g": _unit(lo_open=True),
    "lr_d": _unit(lo_open=True),
    "betas": {"type": "array", "items": _unit(hi_open=True), "minItems": 2, "maxItems": 2},
    "n_ideas": _int(1, 1_024),
    "n_points": _int(2, 1_024),
    "hidden": _int(1, 8_192),
    "steps": _int(1, 10_000_000),
    "seed": {"anyOf": [_int(0, 2**63 - 1), {"type": "null"}]},
    "loss": {"enum": ["minimax", "non_saturating"]},
    "latent": {"enum": ["normal", "uniform"]},
    "g_ema": _unit(hi_open=True),
    "log_every": _int(1, 10_000_000),
    "checkpoint_every": _int(0, 10_000_000),
    "lr_schedule": {"enum": ["constant", "linear"]},
    "d_hidden": _int(0, 8_192),
    "g_layers": _int(1, 8),
    "d_layers": _int(1, 8),
    "ema_warmup": {"type": "boolean"},
}


def test_json_schema_properties_are_the_published_schema() -> None:
    props = json_schema_properties()
    assert props == SCHEMA
    # The same text too: key order and integers (0, not 0.0) included.
    assert json.dumps(props) == json.dumps(SCHEMA)
    assert list(props) == [f.name for f in dataclasses.fields(TrainConfig)]


def test_every_field_is_declared_with_its_doc_and_flags() -> None:
    specs = field_specs()
    assert list(specs) == list(TUTORIAL)
    for name, spec in specs.items():
        assert isinstance(spec, FieldSpec)
        assert spec.doc.strip() and spec.doc == " ".join(spec.doc.split()), name
    assert {n for n, s in specs.items() if s.nullable} == {"seed"}
    assert {n: s.kind for n, s in specs.items() if s.kind != "int"} == {
        "lr_g": "float",
        "lr_d": "float",
        "betas": "pair",
        "loss": "choice",
        "latent": "choice",
        "g_ema": "float",
        "lr_schedule": "choice",
        "ema_warmup": "bool",
    }


def test_the_declarations_cannot_be_changed() -> None:
    spec = field_specs()["steps"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.hi = 20_000_000  # type: ignore[misc]
    with pytest.raises(TypeError):
        dataclasses.fields(TrainConfig)[0].metadata["spec"] = spec  # type: ignore[index]


def test_sweepable_and_resume_mutable_come_from_the_declarations() -> None:
    # A sweep may vary any field; a resumed run only its length and its reporting.
    assert frozenset(TUTORIAL) == SWEEPABLE
    assert frozenset({"steps", "log_every", "checkpoint_every"}) == RESUME_MUTABLE
    assert isinstance(SWEEPABLE, frozenset) and isinstance(RESUME_MUTABLE, frozenset)


def test_resolve_preset() -> None:
    assert DEFAULT_PRESET == "tutorial"
    assert resolve_preset(None) == "tutorial"
    for name in ("tutorial", "recommended", "fast"):
        assert resolve_preset(name) == name
    for name in ("Fast", "", 3):
        with pytest.raises(ConfigError) as info:
            resolve_preset(name)  # type: ignore[arg-type]
        assert (info.value.field, info.value.message) == (
            "preset",
            f"must be one of tutorial, recommended, fast; got {name!r}",
        )


def test_from_dict_names_every_allowed_field_when_refusing_one() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"zeta": 1, "alpha": 2, "steps": 5})
    assert info.value.field == "alpha"
    assert info.value.message == f"unknown field; allowed: preset, {', '.join(sorted(TUTORIAL))}"
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(("steps", 5))  # type: ignore[arg-type]
    assert info.value.message == "must be an object, got tuple"


def test_from_dict_does_not_change_its_argument() -> None:
    data = {"preset": "fast", "steps": 7, "betas": [0.5, 0.5]}
    assert TrainConfig.from_dict(data).to_dict() == {
        **TrainConfig.from_preset("fast").to_dict(),
        "steps": 7,
        "betas": [0.5, 0.5],
    }
    assert data == {"preset": "fast", "steps": 7, "betas": [0.5, 0.5]}


# ---------------------------------------------------------------------- the size limits
def test_limits() -> None:
    assert MAX_SEED == 9_223_372_036_854_775_807  # torch's seeds are int64
    assert MAX_CHECKPOINT_BYTES == 67_108_864
    assert MAX_ACTIVATION_FLOATS == 67_108_864


def test_the_checkpoint_limit_is_exact_and_counts_the_ema_copy() -> None:
    # The widest two-layer models whose checkpoints fit: G, D and Adam's two moments each
    # (3 x their parameters) in 63 MiB of float32, plus G's average when EMA is on.
    TrainConfig(hidden=1_649, g_layers=2, d_layers=2)
    TrainConfig(hidden=1_525, g_layers=2, d_layers=2, g_ema=0.5)
    for changes in ({"hidden": 1_650}, {"hidden": 1_526, "g_ema": 0.5}):
        with pytest.raises(ConfigError) as info:
            TrainConfig(g_layers=2, d_layers=2, **changes)  # type: ignore[arg-type]
        assert info.value.field == "hidden"
    # Models of exactly the limit's size (3 x 5 505 024 floats) are allowed.
    config = TrainConfig(n_ideas=1, n_points=3, hidden=3_076, d_hidden=2_340, d_layers=2)
    assert sum(model_floats(config)) == 5_505_024
    with pytest.raises(ConfigError):
        config.replace(d_hidden=2_341)


def test_the_checkpoint_limits_message_gives_the_numbers() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(hidden=2_048, g_layers=2, d_layers=2)
    assert info.value.field == "hidden"
    assert info.value.message == (
        "the models would have 8,470,544 parameters and their checkpoint 97 MiB; "
        "checkpoints are limited to 64 MiB (about 5,505,024 parameters): "
        "lower hidden, d_hidden, g_layers, d_layers, n_ideas and n_points"
    )
    with pytest.raises(ConfigError) as info:
        TrainConfig(hidden=2_048, g_layers=2, d_layers=2, g_ema=0.9)
    assert "checkpoint 113 MiB;" in info.value.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # D larger than G, but sized by hidden: d_hidden is not set.
        ({"hidden": 2_048, "d_layers": 3}, "hidden"),
        # G and D of exactly the same size: hidden, G's width, is named.
        (
            {"n_ideas": 1, "hidden": 1_856, "d_hidden": 1_314, "g_layers": 2, "d_layers": 3},
            "hidden",
        ),
        (
            {"n_ideas": 1, "hidden": 1_856, "d_hidden": 1_315, "g_layers": 2, "d_layers": 3},
            "d_hidden",
        ),
        ({"hidden": 64, "d_hidden": 2_048, "d_layers": 3}, "d_hidden"),
        ({"hidden": 2_048, "d_hidden": 64, "g_layers": 3}, "hidden"),
    ],
)
def test_the_size_refusal_names_the_width_of_the_larger_model(
    changes: dict[str, int], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.message.startswith("the models would have ")


def test_g_and_d_of_the_same_size_are_possible() -> None:
    # The tie in the case above: a G and a D with the same number of parameters.
    sizes = {"n_ideas": 1, "n_points": 15, "hidden": 1_856, "d_hidden": 1_314}
    shape = SimpleNamespace(**sizes, g_layers=2, d_layers=3)
    g, d = model_floats(shape)  # type: ignore[arg-type]
    assert g == d == 3_478_159


def test_the_activation_limit_counts_the_widest_layer_of_either_model() -> None:
    TrainConfig(batch_size=4_096, hidden=16, d_hidden=8_192)  # 2 x 4 096 x 8 192 = 2**26
    for changes in (
        {"hidden": 16, "d_hidden": 8_192},
        {"hidden": 16, "n_points": 1_024, "d_hidden": 0, "batch_size": 32_769},
        {"hidden": 16, "n_ideas": 1_024, "batch_size": 32_769},
    ):
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{"batch_size": 4_097, **changes})  # type: ignore[arg-type]
        assert info.value.field == "batch_size"
    with pytest.raises(ConfigError) as info:
        TrainConfig(batch_size=4_097, hidden=16, d_hidden=8_192)
    assert info.value.message == (
        "2 x batch_size x the widest layer (8192) must be at most 67,108,864 "
        "(a 256 MiB activation), got 67,125,248: lower batch_size or the widths"
    )
    TrainConfig(batch_size=32_768, n_points=1_024, hidden=16)
    TrainConfig(batch_size=32_768, n_ideas=1_024, hidden=16)
