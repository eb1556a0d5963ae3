"""Sweeps in the store on real databases, SQLite and PostgreSQL alike: a sweep and its members
made in one transaction (all or nothing), its state derived from its members' rows, listing,
cancelling and deleting a sweep, and the jobs listing filtered by sweep."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from service.domain import METRIC_FIELDS, JobState, SweepRecord, SweepStats
from service.domain.sweeps import best_member, grid_indices, grid_size, member_values
from service.store import IdempotencyConflict, QueueFull, Store
from tests.service.store.test_store import claim, make_job

Q, R, S, F, C = (JobState(s) for s in ("queued", "running", "succeeded", "failed", "cancelled"))
ROW = dict.fromkeys(METRIC_FIELDS, 0.5)


def make_sweep(store: Store, sweep_id: str, n: int, **kw: Any) -> SweepRecord:
    args: dict[str, Any] = {
        "sweep_id": sweep_id,
        "name": "grid",
        "config": {"preset": "tutorial", "config": {}, "vary": {"seed": list(range(n))}},
        "best_by": "w1_a",
        "members": [(f"{sweep_id}-m{i}", {"steps": 100, "seed": i}) for i in range(n)],
        "idempotency_key": None,
        "request_hash": None,
        **kw,
    }
    sweep, created = store.create_sweep(**args)
    assert created
    return sweep


def state_of(store: Store, sweep_id: str) -> JobState:
    return SweepStats.of_members(store.sweep_members(sweep_id)).state


def set_states(store: Store, sweep_id: str, *states: JobState) -> None:
    """Moves member i to states[i] along allowed edges."""
    for i, to in enumerate(states):
        job_id = f"{sweep_id}-m{i}"
        if to is Q:
            continue
        assert store.transition(job_id, R)
        if to is not R:
            assert store.transition(job_id, to)


# ----------------------------------------------------------------------------- creation
def test_sweep_and_members_are_created_together(store: Store) -> None:
    sweep = make_sweep(store, "sw", 3)
    assert (sweep.id, sweep.seq, sweep.name, sweep.best_by) == ("sw", 1, "grid", "w1_a")
    assert sweep.config["vary"] == {"seed": [0, 1, 2]}
    members = store.sweep_members("sw")
    assert [(j.id, j.member_index, j.sweep_id) for j in members] == [
        (f"sw-m{i}", i, "sw") for i in range(3)
    ]
    assert all(j.state is Q and j.step == 0 and j.steps == 100 for j in members)
    assert [j.config["seed"] for j in members] == [0, 1, 2]
    # Consecutive in the first-in, first-out queue, in member order.
    make_job(store, "solo")
    assert store.queued_job_ids(10) == ["sw-m0", "sw-m1", "sw-m2", "solo"]
    assert store.get_job("solo").sweep_id is None  # type: ignore[union-attr]
    assert store.get_sweep("nope") is None and store.sweep_members("nope") == []


def test_jobs_list_filters_by_sweep(store: Store) -> None:
    make_sweep(store, "a", 2)
    make_job(store, "solo")
    make_sweep(store, "b", 3)
    page = store.list_jobs(None, 10, 0, sweep_id="a")
    assert [j.id for j in page.items] == ["a-m1", "a-m0"] and page.total == 2
    assert store.list_jobs(None, 10, 0).total == 6
    store.transition("b-m1", JobState.CANCELLED)
    cancelled = store.list_jobs(JobState.CANCELLED, 10, 0, sweep_id="b")
    assert [j.id for j in cancelled.items] == ["b-m1"]


def test_queue_limit_counts_every_member(store: Store) -> None:
    make_job(store, "solo")
    with pytest.raises(QueueFull):
        make_sweep(store, "big", 4, max_queued=4)
    # All or nothing: neither the sweep nor any member was written.
    assert store.get_sweep("big") is None and store.list_jobs(None, 10, 0).total == 1
    make_sweep(store, "fits", 3, max_queued=4)
    assert store.list_jobs(None, 10, 0, sweep_id="fits").total == 3


def test_failed_insert_leaves_nothing(store: Store) -> None:
    make_job(store, "taken")
    with pytest.raises(sa.exc.IntegrityError):
        make_sweep(store, "s", 2, members=[("ok", {"steps": 1}), ("taken", {"steps": 1})])
    assert store.get_sweep("s") is None and store.get_job("ok") is None


def test_idempotency_key(store: Store) -> None:
    make_sweep(store, "s1", 2, idempotency_key="k", request_hash="h1")
    again, created = store.create_sweep(
        sweep_id="s2",
        name=None,
        config={},
        best_by="w1_a",
        members=[("x", {"steps": 1})],
        idempotency_key="k",
        request_hash="h1",
    )
    assert (again.id, created) == ("s1", False) and store.get_job("x") is None
    with pytest.raises(IdempotencyConflict) as info:
        make_sweep(store, "s3", 1, idempotency_key="k", request_hash="h2")
    assert info.value.job_id == "s1"


# ----------------------------------------------------------------------------- state
@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((Q, Q, Q), Q),
        ((R, Q, Q), R),
        ((S, Q, Q), R),  # some final and some queued: under way
        ((C, Q, F), R),
        ((S, R, S), R),
        ((S, S, S), S),
        ((S, F, C), F),
        ((C, S, S), C),
        ((C, C, C), C),
        ((F, F, F), F),
    ],
)
def test_state_is_derived_from_members(
    store: Store, states: tuple[JobState, ...], expected: JobState
) -> None:
    make_sweep(store, "s", len(states))
    set_states(store, "s", *states)
    assert state_of(store, "s") is expected
    listed = store.list_sweeps(10, 0).items[0][1]
    assert listed.state is expected
    assert listed.counts == {s.value: states.count(s) for s in JobState}


def test_progress_is_the_mean_and_list_matches_detail(store: Store) -> None:
    make_sweep(store, "s", 4)
    leases = [claim(store, f"w{i}") for i in range(2)]
    store.record_progress(leases[0], 50, ROW)
    store.record_progress(leases[1], 100, ROW)
    members = store.sweep_members("s")
    detail = SweepStats.of_members(members)
    assert detail.progress == pytest.approx((0.5 + 1.0) / 4)
    (record, listed), *_ = store.list_sweeps(10, 0).items
    assert record.id == "s" and listed.progress == pytest.approx(detail.progress)
    assert listed.counts == detail.counts and listed.size == 4


def test_best_member_per_metric(store: Store) -> None:
    make_sweep(store, "s", 3)
    assert best_member(store.sweep_members("s"), "w1_a") is None  # nothing logged yet
    rows = [
        {**ROW, "w1_a": 0.3, "in_band": 0.7, "d_score": -1.0},
        {**ROW, "w1_a": 0.1, "in_band": 0.6, "d_score": -2.0},
        {**ROW, "w1_a": 0.2, "in_band": 0.9, "d_score": -1.4},
    ]
    for i, row in enumerate(rows):
        store.record_progress(claim(store, f"w{i}"), 10, row)
    members = store.sweep_members("s")
    picks = {m: best_member(members, m) for m in ("w1_a", "in_band", "d_score")}
    assert {m: (job.member_index, value) for m, (job, value) in picks.items()} == {  # type: ignore[misc]
        "w1_a": (1, 0.1),
        "in_band": (2, 0.9),
        "d_score": (2, -1.4),  # closest to -2 ln 2
    }


def test_sweeps_are_listed_newest_first(store: Store) -> None:
    for name in ("a", "b", "c"):
        make_sweep(store, name, 1)
    page = store.list_sweeps(2, 0)
    assert [s.id for s, _ in page.items] == ["c", "b"] and page.total == 3
    assert [s.id for s, _ in store.list_sweeps(2, 2).items] == ["a"]


# ----------------------------------------------------------------------------- cancel, delete
def test_cancel_sweep_ends_queued_and_asks_running(store: Store) -> None:
    make_sweep(store, "s", 3)
    set_states(store, "s", S)  # member 0 done
    lease = claim(store)  # member 1 running under a worker
    assert store.cancel_sweep("s") == 2
    by_id = {j.id: j for j in store.sweep_members("s")}
    assert by_id["s-m0"].state is S and not by_id["s-m0"].cancel_requested
    assert by_id["s-m1"].state is R and by_id["s-m1"].cancel_requested
    assert by_id["s-m2"].state is C and by_id["s-m2"].finished_at is not None
    assert store.renew(lease, 60).cancel  # the worker hears it on its next renewal
    store.finish(lease, JobState.CANCELLED)
    assert state_of(store, "s") is C


def test_delete_only_when_every_member_is_final(store: Store) -> None:
    make_sweep(store, "s", 2)
    make_sweep(store, "other", 1)
    lease = claim(store)
    store.record_progress(lease, 10, ROW)
    assert not store.delete_sweep("s")
    assert len(store.sweep_members("s")) == 2
    store.finish(lease, JobState.SUCCEEDED)
    store.transition("s-m1", JobState.CANCELLED)
    assert store.delete_sweep("s")
    assert store.get_sweep("s") is None and store.sweep_members("s") == []
    assert store.get_job("s-m0") is None and store.metrics_since("s-m0", 0, 10) == []
    assert [j.id for j in store.sweep_members("other")] == ["other-m0"]


# ----------------------------------------------------------------------------- grids
def test_grid_expansion_order_and_size() -> None:
    vary = {"seed": [1, 2], "lr_g": [1e-4, 3e-4, 1e-3]}
    assert grid_size(vary) == 6
    assert grid_size({"a": list(range(1000)), "b": list(range(1000))}) == 10**6
    values = member_values({"vary": vary})
    # Fields in sorted order (lr_g before seed), the last one varying fastest.
    assert values[:3] == [
        {"lr_g": 1e-4, "seed": 1},
        {"lr_g": 1e-4, "seed": 2},
        {"lr_g": 3e-4, "seed": 1},
    ]
    assert grid_indices(vary)[5] == {"lr_g": 2, "seed": 1}
    assert member_values({"members": [{"hidden": 8}, {}]}) == [{"hidden": 8}, {}]
