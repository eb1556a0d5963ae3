"""Request and response bodies of /v1/sweeps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model, field_validator

from gan_engine.config import DEFAULT_PRESET

from ...domain import BEST_BY, DEFAULT_BEST_BY, JobRecord, JobState, SweepRecord, SweepStats
from ...domain.commands import CreateSweep
from ...domain.sweeps import best_member, member_values
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
from .config import CONFIG_PROPERTIES, config_schema
from .jobs import JobStateName, standing

_BEST_BY_DOC = ", ".join(f"{name} ({c.better})" for name, c in BEST_BY.items())


_GRID = {
    "type": "object",
    "properties": {
        name: {"type": "array", "items": schema, "minItems": 1}
        for name, schema in CONFIG_PROPERTIES.items()
    },
    "additionalProperties": False,
    "minProperties": 1,
}
_MEMBER = {"type": "object", "properties": CONFIG_PROPERTIES, "additionalProperties": False}


class SweepCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # Exactly one of vary and members (null is the same as absent).
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["vary"],
                    "properties": {"vary": {"type": "object"}, "members": {"type": "null"}},
                },
                {
                    "required": ["members"],
                    "properties": {"members": {"type": "array"}, "vary": {"type": "null"}},
                },
            ]
        },
    )

    name: str | None = Field(None, max_length=200, pattern=NO_NUL)
    preset: PresetField = Field(
        None,
        description="the recipe every member starts from: tutorial (the default), "
        "recommended or fast",
    )
    config: Annotated[
        dict[str, Any] | None,
        nullable(
            config_schema("Base engine config fields, as in POST /v1/jobs; members override them.")
        ),
    ] = None
    # Plain dicts, checked by the service: its messages name the field and member at fault.
    vary: Annotated[dict[str, Any] | None, nullable(_GRID)] = Field(
        None,
        description="a grid: {field: [values...]}; one member per combination (fields in "
        "sorted order, values in the given order). Exactly one of vary and members",
    )
    # At most CURVEGAN_MAX_SWEEP_MEMBERS: the OpenAPI document states the setting's value.
    members: Annotated[
        list[dict[str, Any]] | None, nullable({"type": "array", "items": _MEMBER, "minItems": 1})
    ] = Field(None, description="an explicit list: [{field: value, ...}, ...], each over the base")
    best_by: Annotated[str, WithJsonSchema({"enum": list(BEST_BY)})] = Field(
        DEFAULT_BEST_BY, description=f"the metric that picks the best member: {_BEST_BY_DOC}"
    )

    @field_validator("config", "vary", "members", mode="before")
    @classmethod
    def _integers(cls, value: Any) -> Any:
        return json_integers(value)

    def command(self, idempotency_key: str | None) -> CreateSweep:
        return to_command(self, CreateSweep, idempotency_key=idempotency_key)


# Members in each state: one field per state, from the one enum.
SweepCounts = create_model(
    "SweepCounts",
    __module__=__name__,
    **{state.value: (int, ...) for state in JobState},  # type: ignore[call-overload]
)


class SweepMember(BaseModel):
    job_id: str
    member_index: int
    values: dict[str, Any] = Field(description="the fields this member sets over the base")
    state: JobStateName
    step: int
    steps: int
    progress: float
    metrics: LossMetrics | None
    quality: QualityMetrics | None


class SweepBest(BaseModel):
    job_id: str
    member_index: int
    value: float = Field(description="the member's latest value of best_by")


class SweepSummary(BaseModel):
    id: str
    name: str | None
    state: JobStateName = Field(
        description="derived from the members: queued (all queued), running, succeeded (all "
        "succeeded), failed (all final, one failed) or cancelled (all final, none failed)"
    )
    created_at: datetime
    best_by: str
    preset: str
    config: dict[str, Any] = Field(description="the base config, as given")
    vary: dict[str, list[Any]] | None = Field(description="the grid, when one was given")
    member_count: int
    counts: SweepCounts
    progress: float = Field(description="the mean of the members' progress")

    @classmethod
    def fields_of(cls, sweep: SweepRecord, stats: SweepStats) -> dict[str, Any]:
        return {
            "id": sweep.id,
            "name": sweep.name,
            "state": stats.state.value,
            "created_at": iso(sweep.created_at),
            "best_by": sweep.best_by,
            "preset": sweep.config.get("preset", DEFAULT_PRESET),
            "config": sweep.config.get("config") or {},
            "vary": sweep.config.get("vary"),
            "member_count": stats.size,
            "counts": stats.counts,
            "progress": stats.progress,
        }

    @classmethod
    def of(cls, sweep: SweepRecord, stats: SweepStats) -> SweepSummary:
        return cls(**cls.fields_of(sweep, stats))


class Sweep(SweepSummary):
    members: list[SweepMember]
    best: SweepBest | None = Field(
        description="the member with the best latest best_by so far; null until one logged"
    )

    @classmethod
    def of_members(cls, sweep: SweepRecord, jobs: list[JobRecord]) -> Sweep:
        values = member_values(sweep.config)
        best = best_member(jobs, sweep.best_by)
        return cls(
            **cls.fields_of(sweep, SweepStats.of_members(jobs)),
            members=[_member(job, values) for job in jobs],
            best=None if best is None else SweepBest(**_place(best[0]), value=best[1]),
        )


def _place(job: JobRecord) -> dict[str, Any]:
    # Every job read as a sweep's member has its index (store.sweep_members selects by sweep).
    assert job.member_index is not None, job.id
    return {"job_id": job.id, "member_index": job.member_index}


def _member(job: JobRecord, values: list[dict[str, Any]]) -> SweepMember:
    place = _place(job)
    return SweepMember(**place, values=values[place["member_index"]], **standing(job))


class SweepList(BaseModel):
    items: list[SweepSummary]
    total: int
