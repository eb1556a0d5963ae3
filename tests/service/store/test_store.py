"""The store on real databases, SQLite and PostgreSQL alike: the job state machine, typed
records, leases with fencing, lapse recovery on the database's clock, and concurrent claims."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from service.domain import CheckpointRecord, JobRecord, JobState, Lease, Requests
from service.domain.records import METRIC_FIELDS
from service.domain.states import FINAL_STATES, TRANSITIONS, IllegalTransition
from service.store import (
    CheckpointInUse,
    IdempotencyConflict,
    LeaseLost,
    MissingCheckpoint,
    QueueFull,
    Store,
)
from service.store.clock import db_now
from service.store.engine import make_engines
from tests.service.store.conftest import execute

ROW = dict.fromkeys(METRIC_FIELDS, 0.5)
LEASE_S = 60


def make_job(store: Store, job_id: str, **kw: Any) -> JobRecord:
    args: dict[str, Any] = {
        "job_id": job_id,
        "name": None,
        "config": {"steps": 100},
        "step": 0,
        "resumed_from": None,
        "idempotency_key": None,
        "request_hash": None,
        **kw,
    }
    job, created = store.create_job(**args)
    assert created
    return job


def get(store: Store, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    assert job is not None, job_id
    return job


def claim(store: Store, worker: str = "w1", lease_s: float = LEASE_S) -> Lease:
    claimed = store.claim(worker, lease_s)
    assert claimed is not None
    return claimed[0]


def checkpoint(ckpt_id: str, job_id: str | None, step: int) -> dict[str, Any]:
    return {
        "id": ckpt_id,
        "job_id": job_id,
        "step": step,
        "config": {"steps": 100},
        "size_bytes": 1,
        "sha256": "0" * 64,
        "source": "training",
    }


# ---------------------------------------------------------------------- states and records
def test_lifecycle_sets_timestamps(store: Store) -> None:
    job = make_job(store, "j1")
    assert job.state is JobState.QUEUED and job.started_at is None and job.finished_at is None
    assert job.seq == 1 and job.steps == 100 and job.config == {"steps": 100}
    assert store.transition("j1", JobState.RUNNING)
    running = get(store, "j1")
    assert running.state is JobState.RUNNING and running.started_at is not None
    assert running.finished_at is None
    assert store.transition("j1", JobState.SUCCEEDED)
    done = get(store, "j1")
    assert done.state is JobState.SUCCEEDED
    assert done.finished_at is not None and done.finished_at >= running.started_at


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_no_transition_leaves_a_final_state(store: Store, final: JobState) -> None:
    make_job(store, "j")
    assert store.transition("j", JobState.RUNNING)
    assert store.transition("j", final)
    for to in JobState:
        assert not store.transition("j", to), f"{final} -> {to} must be refused"
    assert get(store, "j").state is final


def test_queued_cannot_succeed_and_only_from_narrows(store: Store) -> None:
    make_job(store, "j")
    assert not store.transition("j", JobState.SUCCEEDED)
    assert get(store, "j").state is JobState.QUEUED
    assert store.transition("j", JobState.RUNNING)
    assert not store.transition("j", JobState.CANCELLED, only_from={JobState.QUEUED})
    assert get(store, "j").state is JobState.RUNNING
    assert store.transition("j", JobState.FAILED, only_from={JobState.RUNNING}, error="boom")
    failed = get(store, "j")
    assert failed.state is JobState.FAILED and failed.error == "boom"


def test_fifo_queue_and_newest_first_listing(store: Store) -> None:
    for i in range(3):
        make_job(store, f"j{i}")
    assert store.queued_job_ids(2) == ["j0", "j1"]
    page = store.list_jobs(None, 10, 0)
    assert [j.id for j in page.items] == ["j2", "j1", "j0"] and page.total == 3
    second = store.list_jobs(None, 1, 1)
    assert [j.id for j in second.items] == ["j1"] and second.total == 3
    store.transition("j1", JobState.CANCELLED)
    cancelled = store.list_jobs(JobState.CANCELLED, 10, 0)
    assert [j.id for j in cancelled.items] == ["j1"] and cancelled.total == 1
    assert store.queued_job_ids(10) == ["j0", "j2"]


def test_idempotency_key(store: Store) -> None:
    make_job(store, "j1", idempotency_key="k", request_hash="h1")
    again, created = store.create_job(
        job_id="j2",
        name=None,
        config={"steps": 100},
        step=0,
        resumed_from=None,
        idempotency_key="k",
        request_hash="h1",
    )
    assert not created and again.id == "j1"
    with pytest.raises(IdempotencyConflict) as raised:
        make_job(store, "j3", idempotency_key="k", request_hash="other")
    assert raised.value.job_id == "j1"
    assert store.get_job("j2") is None and store.get_job("j3") is None


def test_queue_limit(store: Store) -> None:
    make_job(store, "j1", max_queued=1)
    with pytest.raises(QueueFull):
        make_job(store, "j2", max_queued=1)
    assert store.get_job("j2") is None
    # Only queued jobs count against the limit.
    claim(store)
    make_job(store, "j3", max_queued=1)


def test_progress_metrics_and_replay_after_resume(store: Store) -> None:
    make_job(store, "j")
    lease = claim(store)
    for step in (10, 20, 30):
        store.record_progress(lease, step, {**ROW, "d_loss": step / 100})
    assert [m["step"] for m in store.metrics_since("j", 10, 100)] == [20, 30]
    job = get(store, "j")
    assert job.step == 30 and job.progress == 0.3
    assert job.metrics is not None and job.metrics["d_loss"] == 0.3
    assert job.quality == {"in_band": 0.5, "resid": 0.5, "w1_a": 0.5}

    store.rewind(lease, 10)
    assert get(store, "j").step == 10
    assert [m["step"] for m in store.metrics_since("j", 0, 100)] == [10]
    for step in (20, 30):  # replayed steps replace, never duplicate
        store.record_progress(lease, step, {**ROW, "d_loss": 0.9})
    store.record_progress(lease, 30, {**ROW, "d_loss": 0.8})
    history = store.metrics_since("j", 0, 100)
    assert [m["step"] for m in history] == [10, 20, 30]
    assert [m["d_loss"] for m in history] == [0.1, 0.9, 0.8]


def test_a_rows_preview_curves_are_kept_rounded_and_read_only_when_asked(store: Store) -> None:
    make_job(store, "j")
    lease = claim(store)
    store.record_progress(lease, 10, ROW)  # as rows logged before curves were recorded
    curves = [[i + j / 3 for j in range(15)] for i in range(4)]
    store.record_progress(lease, 20, ROW, curves)
    store.record_progress_many([(lease, 30, ROW, curves)])
    assert all("curves" not in m for m in store.metrics_since("j", 0, 100))
    rows = store.metrics_since("j", 0, 100, curves=True)
    assert [m["curves"] for m in rows[:1]] == [None]
    for row in rows[1:]:
        assert row["curves"] == [[round(v, 5) for v in c] for c in curves]


def test_delete_only_final_jobs_and_keep_checkpoints(store: Store) -> None:
    make_job(store, "j")
    lease = claim(store)
    store.record_progress(lease, 5, ROW)
    for ckpt_id, step in (("c1", 5), ("c3", 30), ("c2", 20)):
        added = store.add_checkpoint(checkpoint(ckpt_id, "j", step), lease=lease)
        assert isinstance(added, CheckpointRecord) and added.step == step
    # The highest step, not the newest insertion.
    assert get(store, "j").latest_checkpoint == "c3"
    assert not store.delete_job("j")
    store.finish(lease, JobState.CANCELLED)
    assert store.delete_job("j")
    assert store.get_job("j") is None
    assert store.metrics_since("j", 0, 100) == []
    kept = store.get_checkpoint("c1")
    assert kept is not None and kept.job_id == "j"
    assert store.list_checkpoints("j", 10, 0).total == 3
    assert not store.delete_job("j")


def test_listing_jobs_gives_each_its_latest_checkpoint(store: Store) -> None:
    steps = {"a": [10, 30, 20], "b": [5], "c": [], "d": [40, 15]}
    for job_id in steps:
        make_job(store, job_id)
    # Interleaved, so that neither insertion order nor seq can stand in for the step.
    for i in range(3):
        for job_id, job_steps in steps.items():
            if i < len(job_steps):
                store.add_checkpoint(checkpoint(f"{job_id}{job_steps[i]}", job_id, job_steps[i]))
    store.add_checkpoint(checkpoint("orphan", None, 99))
    page = store.list_jobs(None, 10, 0)
    latest = {j.id: j.latest_checkpoint for j in page.items}
    assert latest == {"a": "a30", "b": "b5", "c": None, "d": "d40"}
    assert get(store, "a").latest_checkpoint == "a30"


# ---------------------------------------------------------------------- leases
def test_claim_takes_the_oldest_queued_job(store: Store) -> None:
    for i in range(3):
        make_job(store, f"j{i}")
    claimed = store.claim("w1", LEASE_S)
    assert claimed is not None
    lease, job = claimed
    assert lease == Lease("j0", "w1", 1)
    assert job.id == "j0" and job.state is JobState.RUNNING
    assert job.worker_id == "w1" and job.attempt == 1 and job.started_at is not None
    assert get(store, "j0").state is JobState.RUNNING
    assert store.claim("w2", LEASE_S, job_id="j0") is None  # already taken
    second = store.claim("w2", LEASE_S)
    assert second is not None and second[0] == Lease("j1", "w2", 1)
    assert store.queued_job_ids(10) == ["j2"]


def test_cancel_requested_queued_job_is_not_claimed(store: Store) -> None:
    make_job(store, "j0")
    make_job(store, "j1")
    store.request_cancel("j0")
    assert store.claim("w1", LEASE_S, job_id="j0") is None
    assert claim(store).job_id == "j1"
    assert store.claim("w1", LEASE_S) is None
    # Ended with the request, in one transaction: no queued job waits with a cancel no one
    # would act on.
    assert get(store, "j0").state is JobState.CANCELLED


def test_renew_reports_requests(store: Store) -> None:
    make_job(store, "j")
    lease = claim(store, "celery:n1@h:1")
    assert store.renew(lease, LEASE_S) == Requests(cancel=False, suspend=False, save=0)
    assert store.request_save("j") and store.request_save("j")
    assert store.renew(lease, LEASE_S).save == 2
    store.request_cancel("j")
    assert store.renew(lease, LEASE_S) == Requests(cancel=True, suspend=False, save=2)
    assert get(store, "j").cancel_requested


def test_request_save_only_for_running_jobs(store: Store) -> None:
    make_job(store, "j")
    assert not store.request_save("j")
    assert not store.request_save("missing")


def test_request_suspend_by_worker_id(store: Store) -> None:
    for i in range(2):
        make_job(store, f"j{i}")
    a, b = claim(store, "wa"), claim(store, "wb")
    assert store.request_suspend(["wa", "nobody"]) == 1
    assert store.renew(a, LEASE_S).suspend
    assert not store.renew(b, LEASE_S).suspend


def test_request_suspend_prefix_matches_literally(store: Store) -> None:
    workers = ["celery:n1@h:1", "celery:n1@h:2", "celery:n10@h:1", "celeryXn1@h:1", "other"]
    for i in range(len(workers)):
        make_job(store, f"j{i}")
    leases = {w: claim(store, w) for w in workers}
    assert store.request_suspend_prefix("celery:n1@h:") == 2
    suspended = {w for w, lease in leases.items() if store.renew(lease, LEASE_S).suspend}
    assert suspended == {"celery:n1@h:1", "celery:n1@h:2"}


@pytest.mark.parametrize("prefix", ["w_", "w%"])
def test_request_suspend_prefix_wildcards_are_literal(store: Store, prefix: str) -> None:
    workers = ["w_1", "w%1", "wx1", "w"]
    for i in range(len(workers)):
        make_job(store, f"j{i}")
    leases = {w: claim(store, w) for w in workers}
    assert store.request_suspend_prefix(prefix) == 1
    suspended = {w for w, lease in leases.items() if store.renew(lease, LEASE_S).suspend}
    assert suspended == {prefix + "1"}


def test_a_lost_lease_is_fenced_off(store: Store) -> None:
    make_job(store, "j")
    old = claim(store, "w1", lease_s=0)
    store.record_progress(old, 10, ROW)
    assert store.recover_lapsed(max_losses=5, worker_ids=["w1"]) == {"j": JobState.QUEUED}
    new = claim(store, "w2")
    assert new == Lease("j", "w2", 2)

    with pytest.raises(LeaseLost):
        store.renew(old, LEASE_S)
    with pytest.raises(LeaseLost):
        store.record_progress(old, 20, ROW)
    with pytest.raises(LeaseLost):
        store.rewind(old, 0)
    with pytest.raises(LeaseLost):
        store.add_checkpoint(checkpoint("stale", "j", 20), lease=old)
    with pytest.raises(LeaseLost):
        store.finish(old, JobState.SUCCEEDED)
    with pytest.raises(LeaseLost):
        store.release(old)
    job = get(store, "j")
    assert job.state is JobState.RUNNING and job.worker_id == "w2" and job.attempt == 2
    assert job.step == 10 and job.latest_checkpoint is None
    assert store.get_checkpoint("stale") is None
    assert store.list_checkpoints("j", 10, 0).total == 0
    assert [m["step"] for m in store.metrics_since("j", 0, 100)] == [10]

    # The new holder writes as usual.
    assert store.renew(new, LEASE_S) == Requests(cancel=False, suspend=False, save=0)
    store.record_progress(new, 20, ROW)
    store.rewind(new, 20)
    store.add_checkpoint(checkpoint("c20", "j", 20), lease=new)
    store.finish(new, JobState.SUCCEEDED)
    done = get(store, "j")
    assert done.state is JobState.SUCCEEDED and done.step == 20
    assert done.latest_checkpoint == "c20" and done.finished_at is not None
    # A finished job's lease is over too.
    with pytest.raises(LeaseLost):
        store.renew(new, LEASE_S)


def test_recover_lapsed_waits_for_the_database_clock(store: Store) -> None:
    make_job(store, "j")
    lease = claim(store, lease_s=0.2)
    assert store.recover_lapsed(max_losses=3) == {}
    assert get(store, "j").state is JobState.RUNNING
    time.sleep(0.4)
    assert store.recover_lapsed(max_losses=3) == {"j": JobState.QUEUED}
    job = get(store, "j")
    assert job.state is JobState.QUEUED and job.finished_at is None
    assert store.queued_job_ids(10) == ["j"]
    with pytest.raises(LeaseLost):
        store.renew(lease, LEASE_S)
    assert store.recover_lapsed(max_losses=3) == {}  # only running jobs


def test_renewal_keeps_a_lease_from_lapsing(store: Store) -> None:
    make_job(store, "j")
    lease = claim(store, lease_s=0.2)
    time.sleep(0.4)
    # Lapsed but not yet recovered: the holder may still renew it.
    store.renew(lease, LEASE_S)
    assert store.recover_lapsed(max_losses=3) == {}
    assert get(store, "j").state is JobState.RUNNING


def test_recover_lapsed_cancels_a_job_asked_to_cancel(store: Store) -> None:
    make_job(store, "j")
    claim(store, lease_s=0.2)
    store.request_cancel("j")
    time.sleep(0.4)
    assert store.recover_lapsed(max_losses=3) == {"j": JobState.CANCELLED}
    job = get(store, "j")
    assert job.state is JobState.CANCELLED and job.finished_at is not None


def test_recover_lapsed_fails_a_job_lost_too_often(store: Store) -> None:
    make_job(store, "j")
    claim(store, "w1")
    assert store.recover_lapsed(max_losses=2, worker_ids=["w1"]) == {"j": JobState.QUEUED}
    assert get(store, "j").error is None
    claim(store, "w2", lease_s=0.2)
    time.sleep(0.4)
    assert store.recover_lapsed(max_losses=2) == {"j": JobState.FAILED}
    job = get(store, "j")
    assert job.state is JobState.FAILED and job.finished_at is not None
    assert job.error is not None and "2 times" in job.error and "lost" in job.error
    assert execute(store.url, "SELECT lost_count FROM jobs WHERE id = 'j'") == 2


def test_recover_lapsed_for_dead_workers_only(store: Store) -> None:
    for i in range(3):
        make_job(store, f"j{i}")
    claim(store, "dead")
    claim(store, "alive")
    claim(store, "dead")
    # At once, though no lease has lapsed; other workers' jobs stay.
    assert store.recover_lapsed(max_losses=3, worker_ids=["dead"]) == {
        "j0": JobState.QUEUED,
        "j2": JobState.QUEUED,
    }
    assert get(store, "j1").state is JobState.RUNNING
    assert store.queued_job_ids(10) == ["j0", "j2"]


def test_release_requeues_and_keeps_a_cancel(store: Store) -> None:
    make_job(store, "j0")
    make_job(store, "j1")
    a = claim(store)
    store.request_suspend(["w1"])
    assert store.release(a) is JobState.QUEUED
    job = get(store, "j0")
    assert job.state is JobState.QUEUED and job.finished_at is None
    assert store.queued_job_ids(10) == ["j0", "j1"]
    again = claim(store, "w2")
    assert again == Lease("j0", "w2", 2)
    assert not store.renew(again, LEASE_S).suspend  # the old suspend request is spent

    store.request_cancel("j0")
    assert store.release(again) is JobState.CANCELLED
    cancelled = get(store, "j0")
    assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    with pytest.raises(LeaseLost):
        store.release(again)


# The edge each of a worker's state writes takes.
WORKER_MOVES = {
    "claim": (JobState.QUEUED, JobState.RUNNING),
    "finish": (JobState.RUNNING, JobState.SUCCEEDED),
    "release": (JobState.RUNNING, JobState.QUEUED),  # suspended: back to the queue
    "recover": (JobState.RUNNING, JobState.QUEUED),  # its lease lapsed: back to the queue
}


@pytest.mark.parametrize("write", sorted(WORKER_MOVES))
def test_a_workers_state_writes_take_only_edges_of_the_transitions_table(
    store: Store, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    """The lease methods write no edge of their own: without the edge in TRANSITIONS the write
    is refused and the job stays where it was; with it (the real table) the job moves."""
    frm, to = WORKER_MOVES[write]
    make_job(store, "j")
    lease = None if write == "claim" else claim(store)

    def move() -> object:
        if write == "claim":
            return store.claim("w1", LEASE_S)
        assert lease is not None
        if write == "finish":
            store.finish(lease, to)
            return True
        if write == "release":
            return store.release(lease)
        return store.recover_lapsed(max_losses=5, worker_ids=["w1"])

    with monkeypatch.context() as patch:
        patch.setitem(TRANSITIONS, to, TRANSITIONS[to] - {frm})
        with pytest.raises(IllegalTransition, match=f"from {frm.value} to {to.value}"):
            move()
        assert get(store, "j").state is frm
    assert move()
    assert get(store, "j").state is to


@pytest.mark.parametrize("stop", ["release", "recover"])
def test_a_cancel_racing_a_stop_is_never_lost(store: Store, stop: str) -> None:
    """A cancel committed while the job leaves its worker: the API's own move (queued ->
    cancelled) sees the job still running, so the stop must see the cancel, or the job sits
    in the queue for good, cancel requested and so never claimed."""
    make_job(store, "j")
    lease = claim(store)
    stopped: list[Any] = []

    def stop_job() -> None:
        if stop == "release":
            stopped.append(store.release(lease))
        else:
            stopped.append(store.recover_lapsed(max_losses=3, worker_ids=["w1"]).get("j"))

    stopper = threading.Thread(target=stop_job)
    _, write = make_engines(store.url)
    try:
        with write.connect() as conn, conn.begin():
            # request_cancel, caught before it commits.
            conn.execute(sa.text("UPDATE jobs SET cancel_requested = TRUE WHERE id = 'j'"))
            stopper.start()
            stopper.join(timeout=0.3)
        stopper.join(timeout=10.0)
    finally:
        write.dispose()
    if stop == "recover" and stopped == [None]:
        # On PostgreSQL recovery skips a row another writer holds (SKIP LOCKED): the next
        # pass takes it, and must see the cancel.
        stopped = [store.recover_lapsed(max_losses=3, worker_ids=["w1"]).get("j")]
    assert stopped == [JobState.CANCELLED]
    assert get(store, "j").state is JobState.CANCELLED


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_finish_sets_final_state(store: Store, final: JobState) -> None:
    make_job(store, "j")
    lease = claim(store)
    error = "boom" if final is JobState.FAILED else None
    store.finish(lease, final, error)
    job = get(store, "j")
    assert job.state is final and job.error == error
    assert job.finished_at is not None and job.started_at is not None
    assert job.finished_at >= job.started_at
    assert store.recover_lapsed(max_losses=3, worker_ids=["w1"]) == {}


def test_concurrent_claims_never_take_a_job_twice(store: Store) -> None:
    for i in range(20):
        make_job(store, f"j{i:02d}")
    # Two stores: two servers with their own connection pools.
    stores = [Store(store.url) for _ in range(2)]
    start = threading.Barrier(len(stores))
    claimed: list[list[str]] = [[] for _ in stores]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            start.wait()
            while (got := stores[i].claim(f"w{i}", LEASE_S)) is not None:
                claimed[i].append(got[0].job_id)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for s in stores:
            s.dispose()
    assert not errors, errors
    every = claimed[0] + claimed[1]
    assert len(every) == len(set(every)) == 20
    assert set(every) == {f"j{i:02d}" for i in range(20)}
    # Each job names the worker that claimed it, under the first claim.
    for i, ids in enumerate(claimed):
        for job_id in ids:
            job = get(store, job_id)
            assert (job.worker_id, job.attempt) == (f"w{i}", 1)


def test_a_claim_that_meets_a_lock_neither_fails_nor_gives_up(store: Store) -> None:
    make_job(store, "j0")
    make_job(store, "j1")
    got: list[tuple[Lease, JobRecord] | None] = []
    claimer = threading.Thread(target=lambda: got.append(store.claim("w1", LEASE_S)))
    _, write = make_engines(store.url)
    try:
        with write.connect() as conn:
            held = conn.begin()  # SQLite: BEGIN IMMEDIATE, the database's one write lock
            if store.is_postgres:
                # Another server in the middle of claiming j0.
                conn.execute(sa.text("SELECT id FROM jobs WHERE id = 'j0' FOR UPDATE"))
            claimer.start()
            claimer.join(timeout=0.5)
            if store.is_postgres:
                # SKIP LOCKED: the claim passes over the locked row at once, to the next.
                assert not claimer.is_alive()
            else:
                # The busy timeout: the claim waits its turn instead of failing.
                assert claimer.is_alive()
            held.rollback()
        claimer.join(timeout=10.0)
    finally:
        write.dispose()
    assert not claimer.is_alive() and len(got) == 1 and got[0] is not None
    lease, _ = got[0]
    assert lease.job_id == ("j1" if store.is_postgres else "j0")


# ---------------------------------------------------------------------- broker bookkeeping
def test_mark_published_and_queued_unpublished_since(store: Store) -> None:
    for i in range(3):
        make_job(store, f"j{i}")
    assert store.queued_unpublished_since(time.time()) == ["j0", "j1", "j2"]
    store.mark_published(["j0", "j2"])
    after = time.time() + 0.001
    assert store.queued_unpublished_since(after) == ["j0", "j1", "j2"]  # published too long ago
    assert store.queued_unpublished_since(after - 60) == ["j1"]
    assert store.queued_unpublished_since(after, limit=2) == ["j0", "j1"]
    claim(store)  # j0: running jobs are not the broker's
    assert store.queued_unpublished_since(after) == ["j1", "j2"]


# ---------------------------------------------------------------------- clock
def test_db_now_is_the_wall_clock(store: Store) -> None:
    read, write = make_engines(store.url)
    try:
        with read.connect() as conn:
            now = conn.execute(sa.select(db_now())).scalar_one()
    finally:
        read.dispose()
        write.dispose()
    assert isinstance(now, float)
    assert abs(now - time.time()) < 2.0


def test_concurrent_checkpoint_records_get_distinct_sequence_numbers(store: Store) -> None:
    # Creation order (newest first in listings) rests on seq being unique.
    def add(worker: int) -> None:
        for i in range(10):
            store.add_checkpoint(checkpoint(f"c{worker}_{i}", None, i))

    threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [c.seq for c in store.list_checkpoints(None, 100, 0).items]
    assert len(seqs) == 40 and len(set(seqs)) == 40, sorted(seqs)


def test_a_populations_renewals_and_progress_go_in_one_write_each(store: Store) -> None:
    for name in ("a", "b"):
        make_job(store, name)
    a, b = claim(store, "w1"), claim(store, "w1")
    store.request_cancel("b")
    assert store.renew_many([a, b], LEASE_S) == {
        "a": Requests(cancel=False, suspend=False, save=0),
        "b": Requests(cancel=True, suspend=False, save=0),
    }
    assert store.record_progress_many([(a, 10, ROW, None), (b, 10, ROW, None)]) == set()
    # b is lost (recovered and taken by another worker): its writes are refused, a's are not.
    assert store.recover_lapsed(max_losses=5, worker_ids=["w1"]) == {
        "a": JobState.QUEUED,
        "b": JobState.CANCELLED,
    }
    a2 = claim(store, "w2")
    assert store.renew_many([a, a2], LEASE_S).keys() == {"a"}
    assert store.record_progress_many([(a, 20, ROW, None), (a2, 20, ROW, None)]) == {"a"}
    assert [m["step"] for m in store.metrics_since("a", 0, 100)] == [10, 20]
    assert [m["step"] for m in store.metrics_since("b", 0, 100)] == [10]
    assert store.renew_many([], LEASE_S) == {}


def test_a_checkpoint_an_unfinished_job_resumes_from_is_not_deleted(store: Store) -> None:
    store.add_checkpoint(checkpoint("up", None, 50))
    make_job(store, "r", resumed_from="up", step=50)
    with pytest.raises(CheckpointInUse):  # queued: it will start from it
        store.delete_checkpoint("up")
    lease = claim(store)
    with pytest.raises(CheckpointInUse):  # running, none of its own: a loss restarts from it
        store.delete_checkpoint("up")
    store.add_checkpoint(checkpoint("own", "r", 60), lease=lease)
    with pytest.raises(CheckpointInUse):
        store.delete_checkpoint("own")
    assert store.delete_checkpoint("up")  # its own latest is where it resumes now
    store.finish(lease, JobState.CANCELLED)
    assert store.delete_checkpoint("own") and not store.delete_checkpoint("own")
    with pytest.raises(MissingCheckpoint):  # deleted before the job could be recorded
        make_job(store, "late", resumed_from="up", step=50)
    assert store.get_job("late") is None


def test_the_job_log_has_a_line_for_each_queue_transition(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's log set-up (service/logs.py) stops propagation to the root's handlers.
    monkeypatch.setattr(logging.getLogger("curvegan"), "propagate", True)
    caplog.set_level(logging.INFO, logger="curvegan.jobs")
    make_job(store, "queued")
    store.request_cancel("queued")  # no worker will ever say it ended
    make_job(store, "held")
    store.release(claim(store))  # suspended: back to the queue
    claim(store, "w2")
    assert store.recover_lapsed(max_losses=5, worker_ids=["w2"]) == {"held": JobState.QUEUED}
    claim(store, "w3")
    assert store.recover_lapsed(max_losses=2, worker_ids=["w3"]) == {"held": JobState.FAILED}
    lines = [r.getMessage() for r in caplog.records if r.name == "curvegan.jobs"]
    expected = [
        "job queued cancelled while queued",
        "job held back in the queue: suspended at step 0 (its worker stops)",
        "job held back in the queue: its worker was lost; it resumes from its checkpoint",
        "job held failed at step 0, its worker lost: its worker was lost 2 times (died, hung "
        "or cut off); giving up",
    ]
    assert [line for line in lines if "started on" not in line] == expected, lines
