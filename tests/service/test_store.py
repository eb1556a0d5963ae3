"""The store's state machine and records, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.store import (
    CANCELLED,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STATES,
    SUCCEEDED,
    IdempotencyConflict,
    QueueFull,
    Store,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    s.create_schema()
    return s


def make_job(store: Store, job_id: str, **kw: object) -> dict:
    args = {
        "job_id": job_id,
        "name": None,
        "config": {"steps": 100},
        "step": 0,
        "resumed_from": None,
        "idempotency_key": None,
        "request_hash": None,
    }
    args.update(kw)
    job, created = store.create_job(**args)  # type: ignore[arg-type]
    assert created
    return job


def test_lifecycle_sets_timestamps(store: Store) -> None:
    job = make_job(store, "j1")
    assert job["state"] == QUEUED and job["started_at"] is None
    assert store.transition("j1", RUNNING)
    assert store.get_job("j1")["started_at"] is not None
    assert store.transition("j1", SUCCEEDED)
    done = store.get_job("j1")
    assert done["state"] == SUCCEEDED and done["finished_at"] >= done["started_at"]


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_no_transition_leaves_a_final_state(store: Store, final: str) -> None:
    make_job(store, "j")
    store.transition("j", RUNNING)
    assert store.transition("j", final)
    for to in STATES:
        assert not store.transition("j", to), f"{final} -> {to} must be refused"
    assert store.get_job("j")["state"] == final


def test_queued_cannot_succeed_and_only_from_narrows(store: Store) -> None:
    make_job(store, "j")
    assert not store.transition("j", SUCCEEDED)
    store.transition("j", RUNNING)
    assert not store.transition("j", CANCELLED, only_from={QUEUED})
    assert store.get_job("j")["state"] == RUNNING
    assert store.transition("j", FAILED, only_from={RUNNING}, error="boom")
    assert store.get_job("j")["error"] == "boom"


def test_fifo_queue_and_newest_first_listing(store: Store) -> None:
    for i in range(3):
        make_job(store, f"j{i}")
    assert store.queued_job_ids(2) == ["j0", "j1"]
    page = store.list_jobs(None, 10, 0)
    assert [j["id"] for j in page.items] == ["j2", "j1", "j0"] and page.total == 3


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
    assert not created and again["id"] == "j1"
    with pytest.raises(IdempotencyConflict):
        make_job(store, "j3", idempotency_key="k", request_hash="other")


def test_queue_limit(store: Store) -> None:
    make_job(store, "j1", max_queued=1)
    with pytest.raises(QueueFull):
        make_job(store, "j2", max_queued=1)


def test_progress_metrics_and_replay_after_resume(store: Store) -> None:
    make_job(store, "j")
    store.transition("j", RUNNING)
    row = dict.fromkeys(
        ("d_loss", "g_loss", "d_accuracy", "d_score", "in_band", "resid", "w1_a"), 0.5
    )
    for step in (10, 20, 30):
        store.record_progress("j", step, row)
    assert [m["step"] for m in store.metrics_since("j", 10, 100)] == [20, 30]
    assert store.get_job("j")["step"] == 30
    store.forget_metrics_after("j", 20)
    store.record_progress("j", 30, row)  # a replayed step does not duplicate
    assert [m["step"] for m in store.metrics_since("j", 0, 100)] == [10, 20, 30]


def test_delete_only_final_jobs_and_keep_checkpoints(store: Store) -> None:
    make_job(store, "j")
    store.add_checkpoint(
        {
            "id": "c1",
            "job_id": "j",
            "step": 5,
            "config": {},
            "size_bytes": 1,
            "sha256": "0" * 64,
            "source": "training",
        }
    )
    assert store.get_job("j")["latest_checkpoint"] == "c1"
    assert not store.delete_job("j")
    store.transition("j", CANCELLED)
    assert store.delete_job("j")
    assert store.get_job("j") is None
    assert store.get_checkpoint("c1")["job_id"] == "j"
