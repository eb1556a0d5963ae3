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


def _float_range(
    name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number, got {_shown(value)}")
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    allowed = f"{left}{lo:g}, {hi:g}{right}"
    try:
        ok = math.isfinite(value)
    except OverflowError:  # an int too large for a float (JSON allows 1e400 as an integer)
        ok = False
    ok = ok and (value > lo if lo_open else value >= lo)
    ok = ok and (value < hi if hi_open else value <= hi)
    if not ok:
        raise ConfigError(name, f"must be in {allowed}, got {_shown(value)}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}; got {_shown(value)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Defaults reproduce the tutorial's GAN."""

    batch_size: int = 64
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    n_ideas: int = 5  # size of G's latent input ("ideas")
    n_points: int = 15  # points per curve, on x = linspace(-1, 1, n_points)
    hidden: int = 128  # width of the single hidden layer of both G and D
    steps: int = 10_000
    # None draws a random seed when the Trainer is built; the Trainer's config records it,
    # so every run can be repeated exactly.
    seed: int | None = None
    # "minimax" is the tutorial's G loss mean(log(1 - D(G(z)))); "non_saturating" is
    # -mean(log D(G(z))), which gives G stronger gradients early when D wins easily.
    loss: LossName = "minimax"
    latent: LatentName = "normal"
    # Decay of an exponential moving average of G's weights that sampling and quality
    # metrics use; 0 turns it off (the tutorial has none).
    g_ema: float = 0.0
    # Metrics (including the 2 048-curve quality evaluation) every log_every steps;
    # the evaluation costs about as much as a few training steps.
    log_every: int = 100
    # A checkpoint every checkpoint_every steps; 0 means only at the end of the run.
    checkpoint_every: int = 1_000
    # "linear" decays both learning rates from their base value towards 0 at the last step;
    # a GAN's equilibrium is noisy, and shrinking steps let it settle. The tutorial's is
    # "constant".
    lr_schedule: LrScheduleName = "constant"
    # Width of D's hidden layers; 0 means the same as ``hidden`` (the tutorial's).
    d_hidden: int = 0
    # Hidden layers of G and of D; 1 is the tutorial's one-hidden-layer MLP.
    g_layers: int = 1
    d_layers: int = 1
    # Ramps the EMA decay as min(g_ema, (1 + step) / (10 + step)), so the average does not
    # drag the random initial weights along for the first thousand steps.
    ema_warmup: bool = False

    def __post_init__(self) -> None:
        _int_range("batch_size", self.batch_size, 1, 65_536)
        _float_range("lr_g", self.lr_g, 0.0, 1.0, lo_open=True)
        _float_range("lr_d", self.lr_d, 0.0, 1.0, lo_open=True)
        betas = self.betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError("betas", f"must be two numbers in [0, 1), got {_shown(betas)}")
        for i, beta in enumerate(betas):
            _float_range(f"betas[{i}]", beta, 0.0, 1.0, hi_open=True)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        _int_range("n_ideas", self.n_ideas, 1, 1_024)
        _int_range("n_points", self.n_points, 2, 1_024)
        _int_range("hidden", self.hidden, 1, 8_192)
        _int_range("steps", self.steps, 1, 10_000_000)
        if self.seed is not None:
            _int_range("seed", self.seed, 0, MAX_SEED)
        _choice("loss", self.loss, LOSSES)
        _choice("latent", self.latent, LATENTS)
        _float_range("g_ema", self.g_ema, 0.0, 1.0, hi_open=True)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _int_range("d_hidden", self.d_hidden, 0, 8_192)
        _int_range("g_layers", self.g_layers, 1, 8)
        _int_range("d_layers", self.d_layers, 1, 8)
        if not isinstance(self.ema_warmup, bool):
            raise ConfigError("ema_warmup", f"must be true or false, got {_shown(self.ema_warmup)}")
        _int_range("log_every", self.log_every, 1, 10_000_000)
        _int_range("checkpoint_every", self.checkpoint_every, 0, 10_000_000)
        for name in ("lr_g", "lr_d", "g_ema"):
            object.__setattr__(self, name, float(getattr(self, name)))
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
        ``"tutorial"``, the dataclass's own defaults)."""
        if not isinstance(data, dict):
            raise ConfigError("config", f"must be an object, got {type(data).__name__}")
        values = dict(data)
        preset = values.pop("preset", "tutorial")
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ConfigError(
                "preset", f"must be one of {', '.join(PRESETS)}; got {_shown(preset)}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                unknown[0], f"unknown field; allowed: preset, {', '.join(sorted(known))}"
            )
        values = {**PRESETS[preset], **values}
        if isinstance(values.get("betas"), list):
            values["betas"] = tuple(values["betas"])
        return cls(**values)


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


DEFAULT_CONFIG = TrainConfig()
