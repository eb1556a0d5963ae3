"""JobService in-process: creation validated and normalised once, idempotency, resume rules,
cancel and delete, against real SQLite."""

from __future__ import annotations

import pytest

from gan_engine import TrainConfig
from service.core.checkpoints import CheckpointService
from service.core.jobs import JobService
from service.domain import Conflict, Invalid, JobState, NotFound, TooManyJobs
from service.domain.commands import CreateJob
from service.domain.errors import DomainError

from .conftest import RecordingRunner


def test_a_job_is_queued_with_its_preset_resolved_and_a_seed_drawn(
    jobs: JobService, runner: RecordingRunner
) -> None:
    job, created = jobs.create(CreateJob(name="a", config={"lr_g": 2e-4}))
    assert created and job.state is JobState.QUEUED and job.name == "a"
    assert runner.submitted == [job.id]
    expected = TrainConfig(lr_g=2e-4, seed=job.config["seed"]).to_dict()
    assert job.config == expected and isinstance(job.config["seed"], int)
    recommended, _ = jobs.create(CreateJob(preset="recommended"))
    assert recommended.config["lr_g"] == 2e-3 and recommended.config["hidden"] == 64
    assert recommended.steps == 4_000 and recommended.step == 0


def test_a_seed_asked_for_is_kept(jobs: JobService) -> None:
    job, _ = jobs.create(CreateJob(config={"seed": 7}))
    assert job.config["seed"] == 7


@pytest.mark.parametrize(
    ("cmd", "kind", "field", "has"),
    [
        (CreateJob(preset="best"), Invalid, "preset", "tutorial, recommended, fast"),
        (CreateJob(config={"preset": "fast"}), Invalid, "config.preset", "beside config"),
        (CreateJob(config={"lr_g": 0}), Invalid, "config.lr_g", r"\(0, 1\]"),
        (CreateJob(config={"hidden": 8193}), Invalid, "config.hidden", "8192"),
        (CreateJob(config={"colour": 1}), Invalid, "config.colour", "unknown field"),
        (CreateJob(idempotency_key=""), Invalid, "Idempotency-Key", "1 to 200"),
        (CreateJob(idempotency_key="k" * 201), Invalid, "Idempotency-Key", "1 to 200"),
        (CreateJob(resume_from="ck_none"), NotFound, "", "no checkpoint"),
    ],
)
def test_bad_requests_name_the_field_and_queue_nothing(
    jobs: JobService,
    runner: RecordingRunner,
    cmd: CreateJob,
    kind: type[DomainError],
    field: str,
    has: str,
) -> None:
    with pytest.raises(kind, match=has) as caught:
        jobs.create(cmd)
    if field:
        assert caught.value.field == field and caught.value.message.startswith(f"{field}: ")
    assert runner.submitted == [] and jobs.page(None, 10, 0).total == 0


def test_an_idempotency_key_replays_the_same_meaning_and_refuses_another(
    jobs: JobService, runner: RecordingRunner
) -> None:
    first, created = jobs.create(CreateJob(config={}, idempotency_key="k1"))
    # The tutorial's fields written out, or the preset named, mean the same job.
    spelled = TrainConfig().to_dict()
    del spelled["seed"]
    again, created_again = jobs.create(
        CreateJob(preset="tutorial", config=spelled, idempotency_key="k1")
    )
    assert created and not created_again and again.id == first.id
    assert runner.submitted == [first.id]
    with pytest.raises(Conflict, match=f"job {first.id}") as caught:
        jobs.create(CreateJob(config={"steps": 5}, idempotency_key="k1"))
    assert caught.value.field == "Idempotency-Key"


def test_a_full_queue_refuses_with_retry_later(jobs: JobService) -> None:
    for _ in range(5):
        jobs.create(CreateJob())
    with pytest.raises(TooManyJobs, match="5 jobs waiting, limit 5"):
        jobs.create(CreateJob())


def test_resuming_keeps_the_recipe_and_may_change_only_length_and_reporting(
    jobs: JobService, checkpoints: CheckpointService, tiny_checkpoint_bytes: bytes
) -> None:
    ckpt = checkpoints.upload(tiny_checkpoint_bytes)
    job, _ = jobs.create(CreateJob(resume_from=ckpt.id, config={"steps": 10, "log_every": 1}))
    assert job.step == ckpt.step == 4 and job.resumed_from == ckpt.id
    assert job.config == {**ckpt.config, "steps": 10, "log_every": 1}
    with pytest.raises(Invalid, match="only checkpoint_every, log_every, steps can") as c:
        jobs.create(CreateJob(resume_from=ckpt.id, config={"steps": 10, "lr_g": 0.5}))
    assert c.value.field == "config.lr_g"
    with pytest.raises(Invalid, match="greater than the checkpoint's step 4, got 4") as c:
        jobs.create(CreateJob(resume_from=ckpt.id, config={"steps": 4}))
    assert c.value.field == "config.steps"
    with pytest.raises(Invalid, match="keeps its recipe") as c:
        jobs.create(CreateJob(resume_from=ckpt.id, preset="tutorial"))
    assert c.value.field == "preset"
    # An unchanged value of a fixed field is no change.
    same, _ = jobs.create(
        CreateJob(resume_from=ckpt.id, config={"steps": 9, "hidden": ckpt.config["hidden"]})
    )
    assert same.steps == 9


def test_cancel_and_delete_follow_the_states(jobs: JobService) -> None:
    job, _ = jobs.create(CreateJob())
    with pytest.raises(Conflict, match="only a finished job can be deleted"):
        jobs.delete(job.id)
    cancelled = jobs.cancel(job.id)  # queued: no worker, it ends here
    assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    with pytest.raises(Conflict, match="already cancelled"):
        jobs.cancel(job.id)
    jobs.delete(job.id)
    with pytest.raises(NotFound, match=repr(job.id)):
        jobs.get(job.id)
    with pytest.raises(NotFound):
        jobs.metrics(job.id, 0, 10)


def test_pages_filter_by_state_newest_first(jobs: JobService) -> None:
    a, _ = jobs.create(CreateJob(name="a"))
    b, _ = jobs.create(CreateJob(name="b"))
    jobs.cancel(a.id)
    assert [j.id for j in jobs.page(None, 10, 0).items] == [b.id, a.id]
    assert [j.id for j in jobs.page("cancelled", 10, 0).items] == [a.id]
    assert jobs.page("queued", 1, 1).items == [] and jobs.page("queued", 1, 0).total == 1


def test_a_cancel_takes_the_transitions_tables_edge(
    jobs: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.domain import states

    job, _ = jobs.create(CreateJob())
    monkeypatch.setitem(states.TRANSITIONS, JobState.CANCELLED, frozenset({JobState.RUNNING}))
    with pytest.raises(states.IllegalTransition, match="from queued to cancelled"):
        jobs.cancel(job.id)
    assert jobs.get(job.id).state is JobState.QUEUED and not jobs.get(job.id).cancel_requested
