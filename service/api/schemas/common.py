"""Request and response bodies of the v1 API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from gan_engine.config import MAX_SEED, PRESETS

from ...domain import CheckpointRecord, JobRecord
from ...domain.commands import CreateJob, SampleCurves
from .config import config_schema

JobStateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
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
# The largest latent a sample request may give: far past any the latent distributions draw
# (|z| > 10 has odds of 1e-23), and small enough that G's float32 layers cannot overflow.
MAX_LATENT = 1e6


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


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # A resumed job keeps its checkpoint's recipe: no preset beside resume_from.
        json_schema_extra={
            "not": {
                "required": ["preset", "resume_from"],
                "properties": {"preset": {"type": "string"}, "resume_from": {"type": "string"}},
            }
        },
    )

    name: str | None = Field(None, max_length=200, pattern=NO_NUL)
    # Checked by TrainConfig, whose messages name the field and its range.
    config: Annotated[
        dict[str, Any] | None,
        nullable(
            config_schema(
                "Engine config fields, all optional (the preset's values otherwise). Resuming "
                "(resume_from) only steps, log_every and checkpoint_every may differ from the "
                "checkpoint's, and steps must exceed its step."
            )
        ),
    ] = None
    resume_from: str | None = Field(
        None, pattern=NO_NUL, description="checkpoint id to continue from"
    )
    preset: PresetField = Field(
        None,
        description="the named recipe that `config` overrides: tutorial (the default), "
        "recommended or fast; not with resume_from (a resumed job keeps its checkpoint's "
        "recipe)",
    )

    @field_validator("config", mode="before")
    @classmethod
    def _integers(cls, value: Any) -> Any:
        return json_integers(value)

    def command(self, idempotency_key: str | None) -> CreateJob:
        return CreateJob(
            name=self.name,
            preset=self.preset,
            config=self.config,
            resume_from=self.resume_from,
            idempotency_key=idempotency_key,
        )


class LossMetrics(BaseModel):
    d_loss: float
    g_loss: float
    d_accuracy: float
    d_score: float


class QualityMetrics(BaseModel):
    in_band: float
    resid: float
    w1_a: float


class Job(BaseModel):
    id: str
    name: str | None
    state: JobStateName
    config: dict[str, Any]
    step: int
    steps: int
    progress: float
    metrics: LossMetrics | None
    quality: QualityMetrics | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    latest_checkpoint: str | None
    resumed_from: str | None
    worker: str | None = Field(
        description="the worker that holds (or last held) the job: "
        "local:<host>:<pid> in the server's pool, celery:<node>:<pid> on a worker node"
    )
    sweep_id: str | None = Field(None, description="the sweep this job is a member of")
    member_index: int | None = Field(None, description="its place in the sweep, from 0")

    @classmethod
    def of(cls, job: JobRecord) -> Job:
        return cls(
            id=job.id,
            name=job.name,
            state=job.state.value,
            config=job.config,
            step=job.step,
            steps=job.steps,
            progress=job.progress,
            metrics=job.metrics,
            quality=job.quality,
            created_at=iso(job.created_at),
            started_at=iso(job.started_at),
            finished_at=iso(job.finished_at),
            error=job.error,
            latest_checkpoint=job.latest_checkpoint,
            resumed_from=job.resumed_from,
            worker=job.worker_id,
            sweep_id=job.sweep_id,
            member_index=job.member_index,
        )


class JobList(BaseModel):
    items: list[Job]
    total: int


class MetricRow(BaseModel):
    step: int
    d_loss: float
    g_loss: float
    d_accuracy: float
    d_score: float
    in_band: float
    resid: float
    w1_a: float


class MetricList(BaseModel):
    items: list[MetricRow]


class Checkpoint(BaseModel):
    id: str
    job_id: str | None
    step: int
    config: dict[str, Any]
    metrics: LossMetrics | None
    quality: QualityMetrics | None
    created_at: datetime
    size_bytes: int
    sha256: str
    source: Literal["training", "upload"]

    @classmethod
    def of(cls, ck: CheckpointRecord) -> Checkpoint:
        return cls(
            id=ck.id,
            job_id=ck.job_id,
            step=ck.step,
            # A config row that is not an object (edited by hand) must not fail the listing.
            config=ck.config if isinstance(ck.config, dict) else {},
            metrics=ck.metrics,
            quality=ck.quality,
            created_at=iso(ck.created_at),
            size_bytes=ck.size_bytes,
            sha256=ck.sha256,
            source=ck.source,
        )


class CheckpointList(BaseModel):
    items: list[Checkpoint]
    total: int


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
        return SampleCurves(n=self.n, seed=self.seed, z=self.z)


class SampleResponse(BaseModel):
    checkpoint_id: str
    x: list[float]
    curves: list[list[float]]
    seed: int | None
