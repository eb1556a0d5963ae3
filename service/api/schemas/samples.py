"""Bodies of the sampling routes: what to draw, and the curves drawn."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gan_engine.config import MAX_SEED

from ...domain.commands import SampleCurves
from .common import nullable, to_command

# The largest latent a sample request may give: far past any the latent distributions draw
# (|z| > 10 has odds of 1e-23), and small enough that a generator of sane weights stays within
# float32. Huge weights can still overflow: such curves are refused as non_finite_output.
MAX_LATENT = 1e6


Latent = Annotated[float, Field(ge=-MAX_LATENT, le=MAX_LATENT)]


class SampleRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # n or z must be given (not null); the service says so when neither is.
        json_schema_extra={
            "anyOf": [
                {"required": ["n"], "properties": {"n": {"type": "integer"}}},
                {"required": ["z"], "properties": {"z": {"type": "array"}}},
            ]
        },
    )

    # The upper bound is a setting, checked by the service; the OpenAPI document states it.
    n: Annotated[int | None, nullable({"type": "integer", "minimum": 1})] = Field(
        None, description="number of curves, 1..CURVEGAN_MAX_SAMPLES; with z, its rows"
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="same seed, same curves")
    z: list[list[Latent]] | None = Field(
        None,
        min_length=1,
        description="latent rows instead of n and seed: 1..CURVEGAN_MAX_SAMPLES rows, each of "
        "the checkpoint's n_ideas numbers (5 for every preset)",
    )

    def command(self) -> SampleCurves:
        return to_command(self, SampleCurves)


class SampleResponse(BaseModel):
    checkpoint_id: str
    x: list[float]
    curves: list[list[float]]
    seed: int | None
