"""SweepService in-process: a grid or a member list expanded into member jobs, queued all or
none; errors name the field and member at fault."""

from __future__ import annotations

import pytest

from service.core.jobs import JobService
from service.core.sweeps import SweepService
from service.domain import Conflict, Invalid, JobState, SweepStats, TooManyJobs
from service.domain.commands import CreateSweep
from service.domain.errors import DomainError

from .conftest import RecordingRunner


def test_a_grid_expands_in_sorted_field_order_last_varying_fastest(
    sweeps: SweepService, runner: RecordingRunner
) -> None:
    sweep, members = sweeps.create(
        CreateSweep(
            name="g",
            config={"steps": 50},
            vary={"seed": [1, 2], "lr_g": [1e-4, 2e-4, 3e-4]},
            best_by="in_band",
        )
    )
    assert len(members) == 6 and runner.submitted == [m.id for m in members]
    assert [(m.config["lr_g"], m.config["seed"]) for m in members] == [
        (1e-4, 1), (1e-4, 2), (2e-4, 1), (2e-4, 2), (3e-4, 1), (3e-4, 2),
    ]  # fmt: skip
    assert all(m.config["steps"] == 50 and m.sweep_id == sweep.id for m in members)
    assert [m.member_index for m in members] == list(range(6))
    assert sweep.best_by == "in_band" and sweep.config["preset"] == "tutorial"
    assert sweep.config["vary"] == {"seed": [1, 2], "lr_g": [1e-4, 2e-4, 3e-4]}


def test_members_listed_get_seeds_drawn_and_share_the_preset(sweeps: SweepService) -> None:
    _, members = sweeps.create(CreateSweep(preset="fast", members=[{}, {"seed": 3}]))
    assert members[0].config["lr_g"] == 2.5e-3 == members[1].config["lr_g"]
    assert isinstance(members[0].config["seed"], int) and members[1].config["seed"] == 3


@pytest.mark.parametrize(
    ("cmd", "kind", "field", "has"),
    [
        (CreateSweep(), Invalid, "vary", "exactly one of"),
        (CreateSweep(vary={"seed": [1]}, members=[{}]), Invalid, "vary", "exactly one of"),
        (CreateSweep(vary={}), Invalid, "vary", "at least one field"),
        (CreateSweep(vary={"seed": []}), Invalid, "vary.seed", "at least one value"),
        (CreateSweep(vary={"seed": 3}), Invalid, "vary.seed", "must be a list, got int"),
        (CreateSweep(vary={"colour": [1]}), Invalid, "vary.colour", "unknown field"),
        (CreateSweep(vary={"preset": ["fast"]}), Invalid, "vary.preset", "named once"),
        (CreateSweep(members=[{"resume_from": "x"}]), Invalid, "members.0.resume_from", "scratch"),
        (CreateSweep(members=[]), Invalid, "members", "at least one member"),
        (CreateSweep(vary={"seed": list(range(7))}), Invalid, "vary", "7 members; at most 6"),
        (CreateSweep(members=[{}] * 7), Invalid, "members", "7 members; at most 6"),
        (CreateSweep(vary={"lr_g": [0.1, 2.0]}), Invalid, "vary.lr_g.1", r"\(0, 1\]"),
        (CreateSweep(members=[{}, {"hidden": 0}]), Invalid, "members.1.hidden", "got 0"),
        (CreateSweep(config={"hidden": 0}, vary={"seed": [1]}), Invalid, "config.hidden", ""),
        (CreateSweep(config={"preset": "x"}, vary={"seed": [1]}), Invalid, "config.preset", ""),
        (CreateSweep(preset="x", vary={"seed": [1]}), Invalid, "preset", "must be one of"),
        (CreateSweep(vary={"seed": [1]}, best_by="loss"), Invalid, "best_by", "w1_a: lower"),
        (CreateSweep(vary={"seed": [1]}, idempotency_key=""), Invalid, "Idempotency-Key", ""),
    ],
)
def test_bad_sweeps_name_the_field_and_queue_nothing(
    sweeps: SweepService,
    runner: RecordingRunner,
    cmd: CreateSweep,
    kind: type[DomainError],
    field: str,
    has: str,
) -> None:
    with pytest.raises(kind, match=has or None) as caught:
        sweeps.create(cmd)
    assert caught.value.field == field
    assert runner.submitted == [] and sweeps.page(10, 0).total == 0


def test_sizes_broken_by_a_members_values_name_where_it_was_set(sweeps: SweepService) -> None:
    # Each value is in range; with the base's layers they make too large a model.
    with pytest.raises(Invalid, match="checkpoints are limited to 64 MiB") as caught:
        sweeps.create(CreateSweep(config={"g_layers": 8}, vary={"hidden": [8, 8192]}))
    assert caught.value.field == "vary.hidden.1"


def test_a_sweep_is_queued_all_or_none(sweeps: SweepService, jobs: JobService) -> None:
    with pytest.raises(TooManyJobs, match="no room for 21 more jobs"):
        SweepService(sweeps.store, sweeps.runner, max_queued=20, max_members=30).create(
            CreateSweep(vary={"seed": list(range(21))})
        )
    assert jobs.page(None, 100, 0).total == 0


def test_idempotent_sweeps_replay_and_conflict(sweeps: SweepService) -> None:
    grid = CreateSweep(vary={"seed": [1, 2]}, idempotency_key="s")
    listed = CreateSweep(members=[{"seed": 1}, {"seed": 2}], idempotency_key="s")
    first, _ = sweeps.create(grid)
    again, _ = sweeps.create(listed)  # the same members, spelled otherwise
    assert again.id == first.id and sweeps.page(10, 0).total == 1
    with pytest.raises(Conflict, match=f"sweep {first.id}"):
        sweeps.create(CreateSweep(vary={"seed": [3]}, idempotency_key="s"))


def test_cancel_then_delete_a_sweep(sweeps: SweepService, jobs: JobService) -> None:
    sweep, members = sweeps.create(CreateSweep(vary={"seed": [1, 2]}))
    with pytest.raises(Conflict, match="member of sweep"):
        jobs.delete(members[0].id)
    with pytest.raises(Conflict, match="only a finished sweep can be deleted"):
        sweeps.delete(sweep.id)
    _, after = sweeps.cancel(sweep.id)
    assert {m.state for m in after} == {JobState.CANCELLED}
    assert SweepStats.of_members(after).state is JobState.CANCELLED
    with pytest.raises(Conflict, match="already cancelled"):
        sweeps.cancel(sweep.id)
    sweeps.delete(sweep.id)
    assert jobs.page(None, 10, 0).total == 0
