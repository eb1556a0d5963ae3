"""Request bodies become domain commands whole: no field of a command is left behind."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel

from service.api.schemas.jobs import JobCreate
from service.api.schemas.samples import SampleRequest
from service.api.schemas.sweeps import SweepCreate
from service.domain.commands import CreateJob, CreateSweep, SampleCurves


@pytest.mark.parametrize(
    ("body", "command", "beside"),
    [
        (JobCreate, CreateJob, {"idempotency_key"}),
        (SweepCreate, CreateSweep, {"idempotency_key"}),
        (SampleRequest, SampleCurves, set()),
    ],
)
def test_every_command_field_comes_from_the_body_or_beside_it(
    body: type[BaseModel], command: type, beside: set[str]
) -> None:
    fields = {f.name for f in dataclasses.fields(command)}
    assert fields - beside == set(body.model_fields)


def test_a_body_becomes_its_command() -> None:
    body = JobCreate.model_validate(
        {"name": "n", "preset": "fast", "config": {"steps": 300.0}, "resume_from": None}
    )
    assert body.command("key") == CreateJob(
        name="n", preset="fast", config={"steps": 300}, resume_from=None, idempotency_key="key"
    )
    sweep = SweepCreate.model_validate({"vary": {"seed": [1.0, 2]}, "best_by": "in_band"})
    assert sweep.command(None) == CreateSweep(vary={"seed": [1, 2]}, best_by="in_band")
    assert SampleRequest.model_validate({"n": 3, "seed": 4}).command() == SampleCurves(n=3, seed=4)
