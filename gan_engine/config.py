"""Training configuration: a frozen, validated dataclass whose defaults are the tutorial's."""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal

LossName = Literal["minimax", "non_saturating"]
LatentName = Literal["normal", "uniform"]

LOSSES: tuple[str, ...] = ("minimax", "non_saturating")
LATENTS: tuple[str, ...] = ("normal", "uniform")
LR_SCHEDULES: tuple[str, ...] = ("constant", "linear")
LrScheduleName = Literal["constant", "linear"]
MAX_SEED = 2**63 - 1
# Tutorial-sized checkpoints are ~90 KB; 64 MiB leaves room for wide models while keeping
# a hostile file from exhausting memory. Configs are held to it (see model_floats), so every
# run's checkpoints can be loaded again to resume or sample.
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024
# Room in MAX_CHECKPOINT_BYTES for the header, the RNG state and the Adam step counters.
_CHECKPOINT_OVERHEAD_BYTES = 1024 * 1024
# The largest activation a training step may hold: batch rows (twice that in D's step) times
# the widest layer. Larger ones would take gigabytes and can take the machine down with them.
MAX_ACTIVATION_FLOATS = 2**26  # 256 MiB of float32

# The quality study's recipe (benchmarks/quality.py; why each value: README, "Results").
RECOMMENDED: dict[str, Any] = {
    "latent": "uniform",  # bounded ideas: no rare extreme z for G to map outside the band
    "loss": "non_saturating",  # strong gradients for G while D still wins easily
    # No momentum (GAN gradients turn quickly) and a short memory in the second moment, so
    # step sizes follow the gradients as they shrink: with beta2 0.99 it needed 6 000 steps.
    "betas": (0.0, 0.9),
    "lr_g": 2e-3,
    "lr_d": 2e-3,
    "lr_schedule": "linear",  # decay to 0 lets the noisy equilibrium settle
    "g_ema": 0.995,  # sample from an average of G's recent weights
    "ema_warmup": True,
    "batch_size": 128,
    "hidden": 64,
    "d_hidden": 96,
    "g_layers": 2,
    "d_layers": 2,  # a deeper D sees the band's edges: in_band ~0.988 -> ~0.994
    "steps": 4_000,
}


def model_floats(config: TrainConfig) -> tuple[int, int]:
    """The number of parameters of G and of D that ``config`` builds (see models.py)."""

    def mlp(n_in: int, width: int, n_out: int, layers: int) -> int:
        return (n_in + 1) * width + (layers - 1) * (width + 1) * width + (width + 1) * n_out

    g = mlp(config.n_ideas, config.hidden, config.n_points, config.g_layers)
    d = mlp(config.n_points, config.d_hidden or config.hidden, 1, config.d_layers)
    return g, d


# The recommended recipe, shortened: a larger step settles in 2 500 steps, but the band's
# edges are the first to suffer: 2 seeds in 25 ended at in_band 0.985-0.986 (README).
FAST: dict[str, Any] = {**RECOMMENDED, "lr_g": 2.5e-3, "lr_d": 2.5e-3, "steps": 2_500}


# How a value is quoted in a message: a few levels and characters of it, so a hostile value
# (a 5 MB string, a list nested a thousand deep) neither floods the message nor fails repr().
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 3, 8, 80, 80


def _shown(value: Any) -> str:
    return _REPR.repr(value)


class ConfigError(ValueError):
    """An invalid configuration value; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _int_range(name: str, value: Any, lo: int, hi: int) -> None:
    # bool is an int subclass, but True as a batch size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer in [{lo}, {hi}], got {_shown(value)}")
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be in [{lo}, {hi}], got {value}")


def _interval(lo: float, hi: float, *, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _float_range(
    name: str, value: Any, lo: float, hi: float, *, lo_open: bool, hi_open: bool
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number, got {_shown(value)}")
    try:
        ok = math.isfinite(value)
    except OverflowError:  # an int too large for a float (JSON allows 1e400 as an integer)
        ok = False  # mutation: skip (every number field has finite bounds: refused below too)
    ok = ok and (value > lo if lo_open else value >= lo)
    ok = ok and (value < hi if hi_open else value <= hi)
    if not ok:
        allowed = _interval(lo, hi, lo_open=lo_open, hi_open=hi_open)
        raise ConfigError(name, f"must be in {allowed}, got {_shown(value)}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}; got {_shown(value)}")


# ------------------------------------------------------------------------------ field specs
FieldKind = Literal["int", "float", "pair", "choice", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    """What one TrainConfig field accepts, declared once: TrainConfig.__post_init__ checks it,
    json_schema_properties() publishes it, SWEEPABLE and RESUME_MUTABLE are read from it.

    ``kind``: "int" (an integer in [lo, hi]), "float" (a number between lo and hi, each end
    closed unless ``lo_open``/``hi_open``), "pair" (two such numbers), "choice" (one of
    ``choices``) or "bool". ``nullable`` also admits None. ``sweep``: a sweep may vary it;
    ``resume``: a resumed run may change it (the others would change what the checkpoint's
    tensors mean or how they were made)."""

    doc: str
    kind: FieldKind
    lo: int | None = None
    hi: int | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    sweep: bool = True
    resume: bool = False

    def check(self, name: str, value: Any) -> Any:
        """``value`` normalised (floats as float, a pair as a tuple of floats), or a
        ConfigError naming ``name`` and what is allowed."""
        if value is None and self.nullable:
            return None
        if self.kind == "int":
            _int_range(name, value, self.lo, self.hi)
            return value
        if self.kind == "choice":
            _choice(name, value, self.choices)
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(name, f"must be true or false, got {_shown(value)}")
            return value
        bounds = {"lo_open": self.lo_open, "hi_open": self.hi_open}
        if self.kind == "float":
            _float_range(name, value, self.lo, self.hi, **bounds)
            return float(value)
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            allowed = _interval(self.lo, self.hi, **bounds)
            raise ConfigError(name, f"must be two numbers in {allowed}, got {_shown(value)}")
        for i, item in enumerate(value):
            _float_range(f"{name}[{i}]", item, self.lo, self.hi, **bounds)
        return (float(value[0]), float(value[1]))

    def json_schema(self) -> dict[str, Any]:
        """The same bounds as JSON Schema (what the service's OpenAPI document states)."""
        schema: dict[str, Any]
        if self.kind == "int":
            schema = {"type": "integer", "minimum": self.lo, "maximum": self.hi}
        elif self.kind == "choice":
            schema = {"enum": list(self.choices)}
        elif self.kind == "bool":
            schema = {"type": "boolean"}
        else:
            schema = {
                "type": "number",
                "exclusiveMinimum" if self.lo_open else "minimum": self.lo,
                "exclusiveMaximum" if self.hi_open else "maximum": self.hi,
            }
            if self.kind == "pair":
                schema = {"type": "array", "items": schema, "minItems": 2, "maxItems": 2}
        return {"anyOf": [schema, {"type": "null"}]} if self.nullable else schema


def spec(default: Any, **declared: Any) -> Any:
    """A TrainConfig field: its default, and a FieldSpec made of ``declared`` (its doc, kind,
    bounds, choices and flags) in the field's metadata."""
    return dataclasses.field(default=default, metadata={"spec": FieldSpec(**declared)})


_MAX_STEPS = 10_000_000
_MAX_WIDTH = 8_192
_MAX_LAYERS = 8


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Defaults reproduce the tutorial's GAN.

    Each field's range, doc and flags are declared once (``spec``); see field_specs()."""

    batch_size: int = spec(64, doc="Curves per training step.", kind="int", lo=1, hi=65_536)
    lr_g: float = spec(1e-4, doc="G's Adam learning rate.", kind="float", lo=0, hi=1, lo_open=True)
    lr_d: float = spec(1e-4, doc="D's Adam learning rate.", kind="float", lo=0, hi=1, lo_open=True)
    betas: tuple[float, float] = spec(
        (0.9, 0.999), doc="Adam's betas, for G and D.", kind="pair", lo=0, hi=1, hi_open=True
    )
    n_ideas: int = spec(5, doc="Size of G's latent input (its ideas).", kind="int", lo=1, hi=1_024)
    n_points: int = spec(
        15, doc="Points per curve, on x = linspace(-1, 1, n_points).", kind="int", lo=2, hi=1_024
    )
    hidden: int = spec(
        128,
        doc="Width of the hidden layers of G, and of D unless d_hidden.",
        kind="int",
        lo=1,
        hi=_MAX_WIDTH,
    )
    steps: int = spec(
        10_000,
        doc="Training steps; a resumed run may extend them.",
        kind="int",
        lo=1,
        hi=_MAX_STEPS,
        resume=True,
    )
    seed: int | None = spec(
        None,
        doc="None draws a random seed when the Trainer is built; the Trainer's config records "
        "it, so every run can be repeated exactly.",
        kind="int",
        lo=0,
        hi=MAX_SEED,
        nullable=True,
    )
    loss: LossName = spec(  # noqa: RUF009 - spec() is a field()
        "minimax",
        doc="minimax is the tutorial's G loss mean(log(1 - D(G(z)))); non_saturating is "
        "-mean(log D(G(z))), which gives G stronger gradients early when D wins easily.",
        kind="choice",
        choices=LOSSES,
    )
    latent: LatentName = spec(  # noqa: RUF009 - spec() is a field()
        "normal", doc="The distribution of G's ideas.", kind="choice", choices=LATENTS
    )
    g_ema: float = spec(
        0.0,
        doc="Decay of an exponential moving average of G's weights that sampling and quality "
        "metrics use; 0 turns it off (the tutorial has none).",
        kind="float",
        lo=0,
        hi=1,
        hi_open=True,
    )
    log_every: int = spec(
        100,
        doc="Metrics (including the 2 048-curve quality evaluation) every log_every steps; "
        "the evaluation costs about as much as a few training steps.",
        kind="int",
        lo=1,
        hi=_MAX_STEPS,
        resume=True,
    )
    checkpoint_every: int = spec(
        1_000,
        doc="A checkpoint every checkpoint_every steps; 0 means only at the end of the run.",
        kind="int",
        lo=0,
        hi=_MAX_STEPS,
        resume=True,
    )
    lr_schedule: LrScheduleName = spec(  # noqa: RUF009 - spec() is a field()
        "constant",
        doc="linear decays both learning rates from their base value towards 0 at the last "
        "step; a GAN's equilibrium is noisy, and shrinking steps let it settle. The "
        "tutorial's is constant.",
        kind="choice",
        choices=LR_SCHEDULES,
    )
    d_hidden: int = spec(
        0,
        doc="Width of D's hidden layers; 0 means the same as hidden (the tutorial's).",
        kind="int",
        lo=0,
        hi=_MAX_WIDTH,
    )
    g_layers: int = spec(
        1,
        doc="Hidden layers of G; 1 is the tutorial's one-hidden-layer MLP.",
        kind="int",
        lo=1,
        hi=_MAX_LAYERS,
    )
    d_layers: int = spec(
        1,
        doc="Hidden layers of D; 1 is the tutorial's one-hidden-layer MLP.",
        kind="int",
        lo=1,
        hi=_MAX_LAYERS,
    )
    ema_warmup: bool = spec(
        False,
        doc="Ramps the EMA decay as min(g_ema, (1 + step) / (10 + step)), so the average does "
        "not drag the random initial weights along for the first thousand steps.",
        kind="bool",
    )

    def __post_init__(self) -> None:
        # Every field in declaration order; a field's own error comes before any limit
        # that joins several (_check_size).
        for f in fields(self):
            value = f.metadata["spec"].check(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._check_size()

    def _check_size(self) -> None:
        """Refuses models whose checkpoint or activations would be too large, naming the
        width that sizes them (the layer counts and sizes are each in range on their own)."""
        g_floats, d_floats = model_floats(self)
        d_width = self.d_hidden or self.hidden
        field = "d_hidden" if self.d_hidden and d_floats > g_floats else "hidden"
        sizing = "hidden, d_hidden, g_layers, d_layers, n_ideas and n_points"
        # G, D, the EMA copy of G and both models' two Adam moments, as float32.
        floats = 3 * (g_floats + d_floats) + (g_floats if self.g_ema > 0 else 0)
        limit = (MAX_CHECKPOINT_BYTES - _CHECKPOINT_OVERHEAD_BYTES) // 4
        if floats > limit:
            raise ConfigError(
                field,
                f"the models would have {g_floats + d_floats:,} parameters and their "
                f"checkpoint {floats * 4 / 2**20:,.0f} MiB; checkpoints are limited to "
                f"{MAX_CHECKPOINT_BYTES // 2**20} MiB (about {limit // 3:,} parameters): "
                f"lower {sizing}",
            )
        widest = max(self.hidden, d_width, self.n_points, self.n_ideas)
        rows = 2 * self.batch_size  # D's step sees the real and the fake batch together
        if rows * widest > MAX_ACTIVATION_FLOATS:
            raise ConfigError(
                "batch_size",
                f"2 x batch_size x the widest layer ({widest}) must be at most "
                f"{MAX_ACTIVATION_FLOATS:,} (a 256 MiB activation), got {rows * widest:,}: "
                "lower batch_size or the widths",
            )

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The named recipe (see PRESETS), with any field overridden."""
        return cls.from_dict({"preset": name, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Builds a config from plain data (JSON); unknown fields are refused by name. An
        optional ``"preset"`` key names the recipe the other keys override (default
        DEFAULT_PRESET, "tutorial": the dataclass's own defaults)."""
        if not isinstance(data, dict):
            raise ConfigError("config", f"must be an object, got {type(data).__name__}")
        values = dict(data)
        # An explicit null is refused: only a missing key means the default.
        preset = _known_preset(values.pop("preset", DEFAULT_PRESET))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                unknown[0], f"unknown field; allowed: preset, {', '.join(sorted(known))}"
            )
        # JSON's lists for betas become tuples in __post_init__.
        return cls(**{**PRESETS[preset], **values})


# Named recipes: the fields each sets over TrainConfig's defaults. benchmarks/quality.py
# measures them side by side; the README's results section explains "recommended".
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # The tutorial's GAN exactly: TrainConfig's defaults.
        "tutorial": MappingProxyType({}),
        # Curves close to indistinguishable from the artist's (w1_a <= 0.01, in_band >= 0.99,
        # resid <= 0.01) in about 2/3 of the tutorial's time; met on 25 of 25 seeds tried.
        "recommended": MappingProxyType(RECOMMENDED),
        # The same targets in under half the tutorial's time, on most seeds (23 of 25).
        "fast": MappingProxyType(FAST),
    }
)


DEFAULT_PRESET = "tutorial"


def _known_preset(name: Any) -> str:
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESETS)}; got {_shown(name)}")
    return name


def resolve_preset(name: str | None) -> str:
    """The preset ``name`` (DEFAULT_PRESET for None), or a ConfigError naming "preset"."""
    return DEFAULT_PRESET if name is None else _known_preset(name)


def field_specs() -> dict[str, FieldSpec]:
    """Each TrainConfig field's FieldSpec, in declaration order."""
    return {f.name: f.metadata["spec"] for f in fields(TrainConfig)}


def json_schema_properties() -> dict[str, dict[str, Any]]:
    """Each field's type and range as JSON Schema (the service's OpenAPI document). Limits
    that join several fields (_check_size) cannot be written in JSON Schema."""
    return {name: s.json_schema() for name, s in field_specs().items()}


# The fields a sweep may vary, and those a resumed run may change (the rest fix what the
# checkpoint's tensors are and how they were made).
SWEEPABLE: frozenset[str] = frozenset(n for n, s in field_specs().items() if s.sweep)
RESUME_MUTABLE: frozenset[str] = frozenset(n for n, s in field_specs().items() if s.resume)

DEFAULT_CONFIG = TrainConfig()
