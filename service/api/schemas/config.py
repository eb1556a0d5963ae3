"""The engine config (gan_engine.TrainConfig) as JSON Schema, for the OpenAPI document,
generated from TrainConfig's own field declarations: every field with its type and range, so
generated clients and fuzzers send what the server accepts. TrainConfig stays the one
validator. Limits that join several fields (the model's size) cannot be written in JSON
Schema: the descriptions say them."""

from __future__ import annotations

from typing import Any

from gan_engine.config import json_schema_properties

CONFIG_PROPERTIES: dict[str, dict[str, Any]] = json_schema_properties()

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
