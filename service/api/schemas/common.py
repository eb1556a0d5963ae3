"""What the API's bodies share: the error body, bounds on ids and offsets, header parameters,
the metric shapes, and how JSON numbers and optional fields are read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Header
from pydantic import BaseModel, Field, WithJsonSchema

from gan_engine.config import PRESETS

# The largest offset or step a query may name: SQLite and PostgreSQL keep integers in 64
# signed bits, and a larger bound parameter was a 500 instead of a 422.
MAX_OFFSET = 2**62
# Text without NUL (U+0000): PostgreSQL can neither store nor compare it, and such a name, id
# or filter was a 500 there. Path ids with NUL are 404 (intake.py): no id holds one.
NO_NUL = r"^[^\x00]*$"
# Header parameters, with the bounds the services check, stated in the OpenAPI document.
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="the same key and request again returns the first result; another "
        "request with it is 409",
    ),
]
# Last-Event-ID: ASCII digits only (str.isdigit() also passes "٣" and "²"), at most a step.
LastEventId = Annotated[
    str | None,
    Header(pattern=r"^[0-9]{1,18}$", description="resume after this step (the last frame's id)"),
]


def json_integers(value: Any, depth: int = 4) -> Any:
    """Integral floats as ints: JSON has one number type, so 297.0 is the integer 297 (JSON
    Schema agrees, and generated clients send it), while TrainConfig, a Python API, refuses a
    float where it wants an int. Its float fields take ints as they are. Only ``depth`` levels
    down (members' values are 3 deep): a body nested a thousand deep must not recurse here."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if depth == 0:
        return value
    if isinstance(value, dict):
        return {k: json_integers(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_integers(v, depth - 1) for v in value]
    return value


C = TypeVar("C")


def to_command(body: BaseModel, command: Callable[..., C], **extra: Any) -> C:
    """A request body as its domain command: the fields the command has, and ``extra``
    (what came beside the body, such as a header)."""
    names = {f.name for f in dataclasses.fields(command)} - set(extra)  # type: ignore[arg-type]
    given = {n: getattr(body, n) for n in names if n in type(body).model_fields}
    return command(**given, **extra)


def nullable(schema: dict[str, Any]) -> WithJsonSchema:
    """The OpenAPI schema of an optional field that the service checks itself (so its messages
    name the field and range): ``schema`` or null."""
    return WithJsonSchema({"anyOf": [schema, {"type": "null"}]})


PresetField = Annotated[str | None, nullable({"enum": list(PRESETS)})]


def iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class Error(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found, validation_error")
    message: str = Field(description="what went wrong, naming the field and allowed range")
    field: str | None = Field(None, description="the offending field as a dotted path")


# The error answers most routes declare in the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Error},
    409: {"model": Error},
    422: {"model": Error},
}


class LossMetrics(BaseModel):
    d_loss: float
    g_loss: float
    d_accuracy: float
    d_score: float


class QualityMetrics(BaseModel):
    in_band: float
    resid: float
    w1_a: float
