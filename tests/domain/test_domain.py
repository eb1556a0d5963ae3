"""The domain, free of I/O: states and transitions, records, errors, sweep rules, commands.
These tests alone pin it (scripts/mutation.py scores service/domain against them)."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from gan_engine import TrainConfig
from service.domain import (
    BEST_BY,
    DEFAULT_BEST_BY,
    FINAL_STATES,
    TRANSITIONS,
    CheckpointRecord,
    Invalid,
    JobRecord,
    JobState,
    Lease,
    Requests,
    SweepRecord,
    SweepStats,
)
from service.domain import errors as domain_errors
from service.domain.commands import (
    CreateJob,
    CreateSweep,
    SampleCurves,
    check_idempotency_key,
    preset_of,
    request_hash,
    with_seed,
)
from service.domain.records import known_metrics, new_id
from service.domain.states import IllegalTransition, check_transition
from service.domain.sweeps import (
    best_member,
    grid_indices,
    grid_size,
    member_values,
    metric_of,
)


def job(
    state: JobState = JobState.QUEUED,
    *,
    job_id: str = "job_x",
    member_index: int | None = 0,
    **fields: object,
) -> JobRecord:
    """A sweep member's record: what it is and where it stands (``step``, ``steps``,
    ``metrics``, ``quality``); the rest blank."""
    blank = dict.fromkeys(f.name for f in dataclasses.fields(JobRecord))
    values = {"seq": 1, "config": {}, "created_at": 0.0, "attempt": 0, "steps": 100, "step": 0}
    values |= {"cancel_requested": False, "sweep_id": "sweep_x"}
    values |= {"id": job_id, "state": state, "member_index": member_index, **fields}
    return JobRecord(**{**blank, **values})  # type: ignore[arg-type]


# ---- states -------------------------------------------------------------------------------


def test_the_states_and_which_are_final() -> None:
    assert [s.value for s in JobState] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED} == FINAL_STATES
    assert [s.is_final for s in JobState] == [False, False, True, True, True]


def test_the_only_edges_and_none_leaves_a_final_state() -> None:
    edges = {(a, b) for b, froms in TRANSITIONS.items() for a in froms}
    q, r, s, f, c = JobState
    assert edges == {(q, r), (r, q), (r, s), (q, f), (r, f), (q, c), (r, c)}
    assert not any(a.is_final for a, _ in edges)
    for a in JobState:
        for b in JobState:
            if (a, b) in edges:
                check_transition(a, b)
            else:
                with pytest.raises(IllegalTransition, match=f"from {a.value} to {b.value}$"):
                    check_transition(a, b)


# ---- records ------------------------------------------------------------------------------


def test_progress_is_step_over_steps_capped_at_one() -> None:
    assert job(step=25, steps=100).progress == 0.25
    assert job(step=100, steps=100).progress == 1.0
    assert job(step=150, steps=100).progress == 1.0
    assert job(step=5, steps=0).progress == 0.0


def test_records_are_immutable() -> None:
    records = [
        job(),
        SweepRecord("sweep_x", 1, None, {}, "w1_a", 0.0),
        CheckpointRecord("ck_x", 1, None, 0, {}, None, None, 0.0, 1, "0" * 64, "upload"),
        Lease("job_x", "w", 1),
        Requests(cancel=False, suspend=False, save=0),
        SweepStats.of({}, 0.0),
        BEST_BY["w1_a"],
        CreateJob(),
        CreateSweep(),
        SampleCurves(),
    ]
    for record in records:
        name = dataclasses.fields(record)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)


def test_ids_name_their_kind_and_are_unique() -> None:
    ids = {new_id("job") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"job_[0-9a-f]{20}", i) for i in ids)


def test_known_metrics_takes_exactly_the_names_as_finite_floats() -> None:
    names = ("a", "b")
    assert known_metrics({"a": 1, "b": 2.5}, names) == {"a": 1.0, "b": 2.5}
    assert isinstance(known_metrics({"a": 1, "b": 2}, names)["a"], float)  # type: ignore[index]
    for odd in (
        None,
        [1, 2],
        {"a": 1},
        {"a": 1, "b": 2, "c": 3},
        {"a": True, "b": 1},
        {"a": "1", "b": 1},
        {"a": math.inf, "b": 1},
        {"a": 1, "b": math.nan},
        {"a": 10**400, "b": 1},
    ):
        assert known_metrics(odd, names) is None, odd


# ---- errors -------------------------------------------------------------------------------


def test_errors_carry_codes_and_invalid_names_its_field() -> None:
    err = Invalid("config.lr_g", "must be in (0, 1]")
    assert (err.code, err.field, err.message) == (
        "validation_error",
        "config.lr_g",
        "config.lr_g: must be in (0, 1]",
    )
    assert str(err) == err.message
    plain = domain_errors.NotFound("no job", field="resume_from")
    assert (plain.code, plain.field, plain.message) == ("not_found", "resume_from", "no job")
    assert domain_errors.Conflict("x").field is None
    codes = {
        domain_errors.DomainError: "internal_error",
        domain_errors.Conflict: "conflict",
        domain_errors.InvalidCheckpoint: "invalid_checkpoint",
        domain_errors.PayloadTooLarge: "payload_too_large",
        domain_errors.UnsupportedMediaType: "unsupported_media_type",
        domain_errors.TooManyRequests: "too_many_requests",
        domain_errors.TooManyJobs: "too_many_jobs",
        domain_errors.TooManyStreams: "too_many_streams",
        domain_errors.Unauthorized: "unauthorized",
        domain_errors.InsufficientStorage: "insufficient_storage",
    }
    for kind, code in codes.items():
        assert kind.code == code
    assert domain_errors.TooManyJobs.retry_after == 5
    assert issubclass(domain_errors.TooManyStreams, domain_errors.TooManyRequests)


# ---- sweeps -------------------------------------------------------------------------------


def test_grid_size_without_expanding_and_the_expansion_order() -> None:
    vary = {"lr_g": [1, 2, 3], "batch_size": [4, 5]}
    assert grid_size(vary) == 6 and grid_size({"a": [1]}) == 1
    assert grid_size({"a": list(range(1000)), "b": list(range(1000))}) == 10**6
    assert grid_indices(vary) == [
        {"batch_size": 0, "lr_g": 0},
        {"batch_size": 0, "lr_g": 1},
        {"batch_size": 0, "lr_g": 2},
        {"batch_size": 1, "lr_g": 0},
        {"batch_size": 1, "lr_g": 1},
        {"batch_size": 1, "lr_g": 2},
    ]


def test_member_values_from_a_grid_or_a_list() -> None:
    assert member_values({"vary": {"b": [1, 2], "a": ["x"]}}) == [
        {"a": "x", "b": 1},
        {"a": "x", "b": 2},
    ]
    listed = [{"seed": 1}, {}]
    values = member_values({"members": listed})
    assert values == listed and values[0] is not listed[0]
    assert member_values({}) == [] and member_values({"members": None}) == []


def _stats(**counts: int) -> SweepStats:
    return SweepStats.of(counts, 0.0)


def test_a_sweeps_state_is_derived_from_its_members() -> None:
    assert _stats(queued=3).state is JobState.QUEUED
    assert _stats(queued=2, running=1).state is JobState.RUNNING
    assert _stats(queued=1, succeeded=1).state is JobState.RUNNING
    assert _stats(running=1, failed=1).state is JobState.RUNNING
    assert _stats(succeeded=3).state is JobState.SUCCEEDED
    assert _stats(succeeded=2, cancelled=1).state is JobState.CANCELLED
    assert _stats(succeeded=1, cancelled=1, failed=1).state is JobState.FAILED
    assert _stats(failed=1).state is JobState.FAILED


def test_stats_count_every_state_and_average_progress() -> None:
    stats = SweepStats.of({"queued": 1, "running": 3}, 2.0)
    assert stats.counts == {
        "queued": 1,
        "running": 3,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert stats.size == 4 and stats.progress == 0.5
    assert SweepStats.of({}, 0.0).progress == 0.0 and SweepStats.of({}, 0.0).size == 0
    assert SweepStats.of({"queued": 1}, 5.0).progress == 1.0
    members = [job(step=50), job(JobState.SUCCEEDED, step=100), job(JobState.RUNNING, step=0)]
    of = SweepStats.of_members(members)
    assert of.counts["queued"] == 1 and of.counts["succeeded"] == 1 and of.counts["running"] == 1
    assert of.progress == pytest.approx(0.5) and of.state is JobState.RUNNING


def test_criteria_rank_by_target_or_direction() -> None:
    assert set(BEST_BY) == {"w1_a", "resid", "in_band", "d_score", "d_loss", "d_accuracy"}
    assert DEFAULT_BEST_BY == "w1_a"
    assert BEST_BY["w1_a"].badness(0.2) == 0.2 and BEST_BY["resid"].badness(0.3) == 0.3
    assert BEST_BY["in_band"].badness(0.9) == -0.9
    assert BEST_BY["d_accuracy"].badness(0.7) == pytest.approx(0.2)
    assert BEST_BY["d_accuracy"].badness(0.3) == pytest.approx(0.2)
    assert BEST_BY["d_loss"].badness(2 * math.log(2)) == 0.0
    assert BEST_BY["d_score"].badness(-2 * math.log(2)) == 0.0
    assert BEST_BY["d_score"].badness(0.0) == pytest.approx(2 * math.log(2))
    sources = {name: c.source for name, c in BEST_BY.items()}
    assert sources == {
        "w1_a": "quality",
        "resid": "quality",
        "in_band": "quality",
        "d_score": "metrics",
        "d_loss": "metrics",
        "d_accuracy": "metrics",
    }
    assert BEST_BY["d_score"].better == "closest to -2 ln 2"


LOSS = {"d_loss": 1.0, "g_loss": -1.0, "d_accuracy": 0.5, "d_score": -1.0}


def _scored(i: int, *, quality: dict[str, float] | None = None, **metrics: float) -> JobRecord:
    return job(
        JobState.RUNNING,
        metrics={**LOSS, **metrics} if metrics else None,
        quality=quality,
        member_index=i,
        job_id=f"job_{i}",
    )


@pytest.mark.parametrize(
    ("best_by", "members", "winner", "value"),
    [
        ("w1_a", [_scored(0, quality={"w1_a": 0.2}), _scored(1, quality={"w1_a": 0.1})], 1, 0.1),
        ("resid", [_scored(0, quality={"resid": 0.1}), _scored(1, quality={"resid": 0.2})], 0, 0.1),
        (
            "in_band",
            [_scored(0, quality={"in_band": 0.9}), _scored(1, quality={"in_band": 0.95})],
            1,
            0.95,
        ),
        ("d_accuracy", [_scored(0, d_accuracy=0.8), _scored(1, d_accuracy=0.45)], 1, 0.45),
        ("d_loss", [_scored(0, d_loss=1.4), _scored(1, d_loss=0.5)], 0, 1.4),
        ("d_score", [_scored(0, d_score=-2.0), _scored(1, d_score=-1.38)], 1, -1.38),
    ],
)
def test_the_best_member_by_each_metric(
    best_by: str, members: list[JobRecord], winner: int, value: float
) -> None:
    best = best_member(members, best_by)
    assert best is not None
    assert best[0].member_index == winner and best[1] == value


def test_ties_go_to_the_lowest_index_and_members_without_a_value_are_skipped() -> None:
    tied = [_scored(2, d_accuracy=0.6), _scored(1, d_accuracy=0.4), _scored(3, d_accuracy=0.4)]
    best = best_member(tied, "d_accuracy")
    assert best is not None and best[0].member_index == 1
    unlogged = [_scored(0), _scored(1, quality={"w1_a": 0.3})]
    best = best_member(unlogged, "w1_a")
    assert best is not None and best[0].member_index == 1
    assert best_member([_scored(0), _scored(1)], "w1_a") is None
    # A record read without its index ranks as index 0.
    unplaced = [_scored(1, d_loss=1.0), _scored(None, d_loss=1.0)]  # type: ignore[arg-type]
    best = best_member(unplaced, "d_loss")
    assert best is not None and best[0].member_index is None
    assert best_member([], "d_loss") is None
    assert metric_of(_scored(0, quality={"resid": 0.1}), "w1_a") is None
    assert metric_of(_scored(0, d_loss=2), "d_loss") == 2.0
    assert isinstance(metric_of(_scored(0, d_loss=2), "d_loss"), float)


# ---- commands -----------------------------------------------------------------------------


def test_idempotency_keys_are_1_to_200_characters() -> None:
    check_idempotency_key(None)
    check_idempotency_key("k")
    check_idempotency_key("k" * 200)
    for bad in ("", "k" * 201):
        with pytest.raises(Invalid, match="must be 1 to 200 characters long") as caught:
            check_idempotency_key(bad)
        assert caught.value.field == "Idempotency-Key"


def test_the_preset_is_named_beside_the_config() -> None:
    assert preset_of(None, None) == "tutorial" and preset_of(None, {}) == "tutorial"
    assert preset_of("fast", {"lr_g": 1e-3}) == "fast"
    with pytest.raises(Invalid, match="named beside config, not in it") as caught:
        preset_of(None, {"preset": "fast"})
    assert caught.value.field == "config.preset"
    with pytest.raises(Invalid, match="must be one of tutorial, recommended, fast; got 'x'") as c:
        preset_of("x", None)
    assert c.value.field == "preset"


def test_a_request_hash_is_of_its_meaning_and_only_with_a_key() -> None:
    assert request_hash(None, {"a": 1}) is None
    one = request_hash("k", {"a": 1, "b": [1, 2]})
    assert one == request_hash("other", {"b": [1, 2], "a": 1})
    assert one != request_hash("k", {"a": 2, "b": [1, 2]})
    assert re.fullmatch(r"[0-9a-f]{64}", one or "")


def test_a_seed_is_drawn_only_when_none_was_asked() -> None:
    assert with_seed(TrainConfig(seed=3)).seed == 3
    drawn = {with_seed(TrainConfig()).seed for _ in range(20)}
    assert None not in drawn and len(drawn) == 20
    assert all(0 <= s < 2**63 for s in drawn)  # type: ignore[operator]
