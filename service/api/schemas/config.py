"""The engine config (gan_engine.TrainConfig) as JSON Schema, for the OpenAPI document: every
field with its type and range, so generated clients and fuzzers send what the server accepts.
TrainConfig stays the one validator; tests/service/test_hostile_requests.py checks that each
bound here is the one it enforces. Limits that join several fields (the model's size) cannot
be written in JSON Schema: the descriptions say them."""

from __future__ import annotations

from typing import Any

from gan_engine.config import LATENTS, LOSSES, LR_SCHEDULES, MAX_SEED


def _int(lo: int, hi: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _unit(*, lo_open: bool = False, hi_open: bool = False) -> dict[str, Any]:
    return {
        "type": "number",
        "exclusiveMinimum" if lo_open else "minimum": 0,
        "exclusiveMaximum" if hi_open else "maximum": 1,
    }


CONFIG_PROPERTIES: dict[str, dict[str, Any]] = {
    "batch_size": _int(1, 65_536),
    "lr_g": _unit(lo_open=True),
    "lr_d": _unit(lo_open=True),
    "betas": {"type": "array", "items": _unit(hi_open=True), "minItems": 2, "maxItems": 2},
    "n_ideas": _int(1, 1_024),
    "n_points": _int(2, 1_024),
    "hidden": _int(1, 8_192),
    "steps": _int(1, 10_000_000),
    "seed": {"anyOf": [_int(0, MAX_SEED), {"type": "null"}]},
    "loss": {"enum": list(LOSSES)},
    "latent": {"enum": list(LATENTS)},
    "g_ema": _unit(hi_open=True),
    "log_every": _int(1, 10_000_000),
    "checkpoint_every": _int(0, 10_000_000),
    "lr_schedule": {"enum": list(LR_SCHEDULES)},
    "d_hidden": _int(0, 8_192),
    "g_layers": _int(1, 8),
    "d_layers": _int(1, 8),
    "ema_warmup": {"type": "boolean"},
}

SIZE_LIMITS = (
    "Beyond each field's range, the models must fit a 64 MiB checkpoint (G, D, G's average "
    "and Adam's moments: about 5.3 million parameters in all, sized by hidden, d_hidden, "
    "g_layers, d_layers, n_ideas and n_points) and 2 x batch_size x the widest layer must be "
    "at most 67 108 864; a config past either is 422, naming the field."
)


def config_schema(description: str) -> dict[str, Any]:
    """The config object: known fields only, each optional."""
    return {
        "type": "object",
        "properties": CONFIG_PROPERTIES,
        "additionalProperties": False,
        "description": f"{description} {SIZE_LIMITS}",
    }
