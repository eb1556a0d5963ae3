"""What one job may leave in the store, on SQLite and PostgreSQL alike: its metric history
thinned past a row cap (the first and newest rows kept, true steps, evenly spread, paging by
since_step intact), preview curves on its newest rows only, its checkpoints pruned to the
newest few and its best (never one a job resumes from), and the bytes the service keeps."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from service.domain import JobState
from service.store import LeaseLost, Store
from service.store.bounds import thinning_stride
from tests.service.store.conftest import execute
from tests.service.store.test_store import ROW, checkpoint, claim, get, make_job

CURVES = [[0.25, 0.5], [0.75, 1.0]]


def steps_of(store: Store, job_id: str, since: int = 0) -> list[int]:
    return [m["step"] for m in store.metrics_since(job_id, since, 100_000)]


def test_thinning_keeps_the_first_and_newest_rows_and_spreads_the_rest_evenly() -> None:
    steps = list(range(1, 101))
    stride, first, recent_from = thinning_stride(steps, 20)
    assert (first, recent_from) == (1, 91)  # the newest 10 stay
    kept = [s for s in steps if s in (first, *range(recent_from, 101)) or s % stride == 0]
    assert len(kept) <= 20 and stride == 16
    # A sparser log (log_every=5) thins by the same rule on its true steps.
    stride, _, _ = thinning_stride(list(range(5, 505, 5)), 20)
    assert len([s for s in range(10, 455, 5) if s % stride == 0]) <= 9


def test_a_long_history_stays_under_the_cap_whole_and_evenly_thinned(store: Store) -> None:
    make_job(store, "j", config={"steps": 10_000})
    lease = claim(store)
    cap, every = 24, 4
    for step in range(1, 401):
        store.record_progress(lease, step, ROW, CURVES)
        if step % every == 0:  # as the runner does: a trim every few logs, below the cap
            store.trim_metrics(lease, cap - every, curve_rows=3)
        assert len(steps_of(store, "j")) <= cap
    steps = steps_of(store, "j")
    assert steps[0] == 1 and steps[-1] == 400 and len(steps) >= cap // 4
    assert get(store, "j").step == 400
    # The older history is evenly spread: one gap between all its rows.
    older = [s for s in steps[1:] if s < steps[-1] - cap // 2]
    assert len(older) >= 2 and len({b - a for a, b in itertools.pairwise(older)}) == 1, steps
    # Paging by since_step walks the thinned history as it is.
    paged, since = [], 0
    while page := store.metrics_since("j", since, 5):
        paged += [m["step"] for m in page]
        since = page[-1]["step"]
    assert paged == steps
    # Only the newest rows keep their preview curves.
    rows = store.metrics_since("j", 0, 1000, curves=True)
    with_curves = [r["step"] for r in rows if r["curves"] is not None]
    assert with_curves == steps[-3:], with_curves
    assert all(r["curves"] == CURVES for r in rows[-3:])


def test_a_trim_under_the_cap_keeps_every_row_and_a_lost_lease_trims_nothing(
    store: Store,
) -> None:
    make_job(store, "j")
    lease = claim(store)
    store.record_progress_many([(lease, s, ROW, CURVES) for s in (10, 20, 30)])
    assert store.trim_metrics(lease, 3, curve_rows=5) == 0
    assert steps_of(store, "j") == [10, 20, 30]
    store.finish(lease, JobState.CANCELLED)
    with pytest.raises(LeaseLost):
        store.trim_metrics(lease, 1, curve_rows=1)
    rows = store.metrics_since("j", 0, 10, curves=True)
    assert [r["step"] for r in rows] == [10, 20, 30] and all(r["curves"] for r in rows)


def scored(ckpt_id: str, job_id: str | None, step: int, w1_a: float, **kw: Any) -> dict:
    quality = {"in_band": 0.5, "resid": 0.5, "w1_a": w1_a}
    return {**checkpoint(ckpt_id, job_id, step), "quality": quality, **kw}


def test_pruning_keeps_the_newest_the_best_and_any_a_job_resumes_from(store: Store) -> None:
    store.add_checkpoint(scored("up", None, 0, 0.0))  # an upload: no job, no retention
    make_job(store, "j")
    lease = claim(store)
    for step in range(1, 11):  # w1_a lower is better: step 2 is the best
        store.add_checkpoint(scored(f"c{step}", "j", step, 0.1 if step == 2 else step), lease=lease)
    make_job(store, "r", resumed_from="c3", step=3)  # queued: it will start from c3
    pruned = store.prune_checkpoints("j", keep=3)
    assert sorted(pruned) == ["c1", "c4", "c5", "c6", "c7"]
    left = [c.id for c in store.list_checkpoints("j", 100, 0).items]
    assert sorted(left) == ["c10", "c2", "c3", "c8", "c9"]
    assert get(store, "j").latest_checkpoint == "c10"
    assert store.get_checkpoint("up") is not None
    assert store.prune_checkpoints("j", keep=3) == []  # nothing more to prune
    store.request_cancel("r")  # cancelled: nothing resumes from c3 any more
    assert store.prune_checkpoints("j", keep=3) == ["c3"]


def test_a_worker_that_lost_its_lease_prunes_nothing(store: Store) -> None:
    """A worker paused past its lease must not prune what the job's new owner saves."""
    make_job(store, "j")
    lease = claim(store)
    for step in range(1, 6):
        store.add_checkpoint(scored(f"c{step}", "j", step, step), lease=lease)
    store.finish(lease, JobState.CANCELLED)
    with pytest.raises(LeaseLost):
        store.prune_checkpoints("j", keep=1, lease=lease)
    assert len(store.list_checkpoints("j", 100, 0).items) == 5


def test_a_sweep_members_best_is_by_its_sweeps_best_by(store: Store) -> None:
    make_job(store, "m")
    execute(
        store.url,
        "INSERT INTO sweeps (id, seq, config, best_by, created_at) "
        f"VALUES ('s', 1, '{json.dumps({})}', 'd_accuracy', 0)",
        "UPDATE jobs SET sweep_id = 's', member_index = 0 WHERE id = 'm'",
    )
    lease = claim(store)
    for step, accuracy in ((1, 0.9), (2, 0.51), (3, 0.1), (4, 0.8)):  # closest to 0.5 wins
        metrics = {"d_loss": 1.0, "g_loss": 1.0, "d_accuracy": accuracy, "d_score": -1.0}
        store.add_checkpoint(scored(f"c{step}", "m", step, 1.0, metrics=metrics), lease=lease)
    assert sorted(store.prune_checkpoints("m", keep=1)) == ["c1", "c3"]


def test_data_bytes_sums_the_recorded_files_and_the_sqlite_database(store: Store) -> None:
    base = store.data_bytes()
    store.add_checkpoint({**checkpoint("a", None, 1), "size_bytes": 1000})
    store.add_checkpoint({**checkpoint("b", None, 2), "size_bytes": 234})
    grown = store.data_bytes()
    if store.local:  # the database file counts too, and grew with the two rows
        assert grown >= base + 1234 and base > 0
    else:
        assert (base, grown) == (0, 1234)
