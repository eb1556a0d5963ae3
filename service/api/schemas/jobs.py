"""Bodies of /v1/jobs: the job to create, a job as the API shows it, its metric rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...domain import JobRecord, JobState
from ...domain.commands import CreateJob
from .common import (
    NO_NUL,
    LossMetrics,
    PresetField,
    QualityMetrics,
    iso,
    json_integers,
    nullable,
    to_command,
)
from .config import config_schema

# The states' names, from the one enum.
JobStateName = Literal[tuple(s.value for s in JobState)]  # type: ignore[valid-type]


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
        return to_command(self, CreateJob, idempotency_key=idempotency_key)


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
            config=job.config,
            **standing(job),
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


def standing(job: JobRecord) -> dict[str, Any]:
    """Where a job stands, as a job and a sweep's member both show it."""
    return {
        "state": job.state.value,
        "step": job.step,
        "steps": job.steps,
        "progress": job.progress,
        "metrics": job.metrics,
        "quality": job.quality,
    }


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
