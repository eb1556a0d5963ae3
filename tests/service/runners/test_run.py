"""The one run path in-process (real SQLite and checkpoint files, no server): a single job is a
population of one and keeps every behaviour of a job (resume, save now, cancel, suspend,
a lost lease, an unreachable store, divergence, a missing checkpoint); a population of many
gives each member its own end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from sqlalchemy.exc import OperationalError

from gan_engine import Population, TrainConfig, checkpoint_from_bytes
from service.domain import METRIC_FIELDS, JobRecord, JobState
from service.runners.claims import Claimed, claim_members
from service.runners.run import run_claimed
from service.runners.worker import WorkerContext

WORKER = "w1"
CONFIG = TrainConfig(steps=40, seed=5, log_every=10, checkpoint_every=0, batch_size=32)


def create(ctx: WorkerContext, job_id: str, config: TrainConfig = CONFIG, **kw: Any) -> None:
    args = {"step": 0, "resumed_from": None, **kw}
    ctx.store.create_job(
        job_id=job_id,
        name=None,
        config=config.to_dict(),
        idempotency_key=None,
        request_hash=None,
        **args,
    )


def claim(ctx: WorkerContext, job_id: str) -> Claimed:
    claimed = ctx.store.claim(WORKER, ctx.lease_s, job_id)
    assert claimed is not None
    return claimed


def at_step(step: int, act: Callable[[], object]) -> Callable[[], None]:
    """A tick that acts once, just before the run's renewal at ``step`` (should_stop runs
    before each step, and ticks before it renews)."""
    calls = {"n": 0}

    def tick() -> None:
        if calls["n"] == step:
            act()
        calls["n"] += 1

    return tick


def job(ctx: WorkerContext, job_id: str) -> JobRecord:
    record = ctx.store.get_job(job_id)
    assert record is not None
    return record


def logged(ctx: WorkerContext, job_id: str) -> list[int]:
    return [row["step"] for row in ctx.store.metrics_since(job_id, 0, 1000)]


def saved_steps(ctx: WorkerContext, job_id: str) -> list[int]:
    return sorted(c.step for c in ctx.store.list_checkpoints(job_id, 100, 0).items)


def latest(ctx: WorkerContext, job_id: str) -> dict[str, torch.Tensor]:
    ckpt_id = job(ctx, job_id).latest_checkpoint
    assert ckpt_id is not None
    return checkpoint_from_bytes(ctx.storage.read(ckpt_id)).tensors


def alone(config: TrainConfig = CONFIG) -> dict[str, torch.Tensor]:
    pop = Population([config])
    pop.run()
    return pop.member_checkpoint(0).tensors


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(got[k], want[k])] == []


def test_a_job_trains_to_the_end_as_a_population_of_one(ctx: WorkerContext) -> None:
    create(ctx, "j")
    assert run_claimed(ctx, [claim(ctx, "j")]) == []
    done = job(ctx, "j")
    assert done.state is JobState.SUCCEEDED and done.step == 40 and done.error is None
    assert logged(ctx, "j") == [10, 20, 30, 40] and saved_steps(ctx, "j") == [40]
    assert_same(latest(ctx, "j"), alone())


def test_a_save_request_saves_at_the_next_step(ctx: WorkerContext) -> None:
    create(ctx, "j")
    run_claimed(ctx, [claim(ctx, "j")], tick=at_step(15, lambda: ctx.store.request_save("j")))
    assert saved_steps(ctx, "j") == [16, 40]


def test_a_suspended_job_goes_back_to_the_queue_and_resumes_exactly(ctx: WorkerContext) -> None:
    create(ctx, "j")
    first = claim(ctx, "j")
    requeued = run_claimed(
        ctx, [first], tick=at_step(25, lambda: ctx.store.request_suspend([WORKER]))
    )
    assert requeued == ["j"]
    stopped = job(ctx, "j")
    assert stopped.state is JobState.QUEUED and stopped.step == 25
    assert logged(ctx, "j") == [10, 20, 25] and saved_steps(ctx, "j") == [25]

    # Rows logged past the checkpoint by an earlier holder are dropped by the rewind.
    lease, _ = claim(ctx, "j")
    ctx.store.record_progress(lease, 30, dict.fromkeys(METRIC_FIELDS, 0.5))
    ctx.store.release(lease)
    assert run_claimed(ctx, [claim(ctx, "j")]) == []
    assert job(ctx, "j").state is JobState.SUCCEEDED
    assert logged(ctx, "j") == [10, 20, 25, 30, 40] and saved_steps(ctx, "j") == [25, 40]
    assert_same(latest(ctx, "j"), alone())


def test_a_cancelled_job_saves_its_last_step_and_ends_cancelled(ctx: WorkerContext) -> None:
    create(ctx, "j")
    run_claimed(ctx, [claim(ctx, "j")], tick=at_step(25, lambda: ctx.store.request_cancel("j")))
    done = job(ctx, "j")
    assert done.state is JobState.CANCELLED and done.step == 25
    assert logged(ctx, "j") == [10, 20, 25] and saved_steps(ctx, "j") == [25]
    record = ctx.store.get_checkpoint(done.latest_checkpoint or "")
    assert record is not None and record.metrics is not None


def test_a_lost_lease_stops_the_run_without_another_write(ctx: WorkerContext) -> None:
    create(ctx, "j")
    lose = at_step(15, lambda: ctx.store.recover_lapsed(max_losses=5, worker_ids=[WORKER]))
    assert run_claimed(ctx, [claim(ctx, "j")], tick=lose) == []
    lost = job(ctx, "j")
    assert lost.state is JobState.QUEUED and lost.step == 10 and saved_steps(ctx, "j") == []


def test_an_unreachable_store_leaves_the_job_to_its_lease(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(ctx, "j")

    def down(*_: object) -> None:
        raise OperationalError("UPDATE jobs", {}, Exception("the database is gone"))

    tick = at_step(15, lambda: monkeypatch.setattr(ctx.store, "renew_many", down))
    assert run_claimed(ctx, [claim(ctx, "j")], tick=tick) == []
    monkeypatch.undo()
    assert job(ctx, "j").state is JobState.RUNNING  # its lease lapses; recovery requeues it


def test_a_diverged_job_fails_with_the_step(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(ctx, "j")
    step = Population.step

    def blow_up(pop: Population) -> None:
        step(pop)
        if pop.step_count == 15:
            pop.g.weights[-1].fill_(float("nan"))

    monkeypatch.setattr(Population, "step", blow_up)
    run_claimed(ctx, [claim(ctx, "j")])
    done = job(ctx, "j")
    assert done.state is JobState.FAILED and saved_steps(ctx, "j") == []
    assert done.error is not None and done.error.startswith("training diverged at step 20: ")


def test_a_missing_checkpoint_to_resume_from_fails_the_job(ctx: WorkerContext) -> None:
    create(ctx, "j")
    run_claimed(
        ctx, [claim(ctx, "j")], tick=at_step(25, lambda: ctx.store.request_suspend([WORKER]))
    )
    ckpt_id = job(ctx, "j").latest_checkpoint
    assert ckpt_id is not None
    ctx.storage.delete(ckpt_id)
    run_claimed(ctx, [claim(ctx, "j")])
    done = job(ctx, "j")
    assert done.state is JobState.FAILED
    assert done.error == f"RuntimeError: the file of checkpoint {ckpt_id} to resume from is missing"


def test_members_of_one_population_each_end_on_their_own(ctx: WorkerContext) -> None:
    configs = [CONFIG.replace(seed=s) for s in (1, 2, 3)]
    for i, config in enumerate(configs):
        create(ctx, f"m{i}", config)
    claimed = [claim(ctx, f"m{i}") for i in range(3)]
    run_claimed(ctx, claimed, tick=at_step(25, lambda: ctx.store.request_cancel("m1")))
    states = [job(ctx, f"m{i}").state for i in range(3)]
    assert states == [JobState.SUCCEEDED, JobState.CANCELLED, JobState.SUCCEEDED]
    assert logged(ctx, "m1") == [10, 20, 25] and saved_steps(ctx, "m1") == [25]
    for i in (0, 2):
        assert logged(ctx, f"m{i}") == [10, 20, 30, 40] and saved_steps(ctx, f"m{i}") == [40]
        got, want = latest(ctx, f"m{i}"), alone(configs[i])
        assert max(float((got[k] - want[k]).abs().max()) for k in want if k != "rng.train") < 1e-5


def sweep(ctx: WorkerContext, configs: list[TrainConfig]) -> list[str]:
    ids = [f"m{i}" for i in range(len(configs))]
    ctx.store.create_sweep(
        sweep_id="s",
        name=None,
        config={},
        best_by="w1_a",
        members=[(job_id, c.to_dict()) for job_id, c in zip(ids, configs, strict=True)],
        idempotency_key=None,
        request_hash=None,
    )
    return ids


@pytest.mark.parametrize("split", [1, 2])
def test_a_sweep_member_is_claimed_with_its_fresh_siblings_of_one_shape(
    ctx: WorkerContext, split: int
) -> None:
    # Four members of one shape (seeds and learning rates vary), one of another.
    configs = [CONFIG.replace(seed=s, lr_g=1e-4 * s) for s in (1, 2, 3, 4)]
    ids = sweep(ctx, [*configs, CONFIG.replace(hidden=64)])
    mine = WorkerContext(ctx.store, ctx.storage, 60.0, split=split, max_population=16)
    claimed = claim_members(mine, WORKER)
    assert [job.id for _, job in claimed] == ids[: 4 // split]
    assert claim_members(mine, "w2", ids[4]) and job(ctx, ids[4]).worker_id == "w2"


def test_a_sweep_member_that_resumes_is_claimed_alone_and_resumes(ctx: WorkerContext) -> None:
    ids = sweep(ctx, [CONFIG.replace(seed=s) for s in (1, 2)])
    first = ctx.store.claim(WORKER, 60.0, ids[0])
    assert first is not None
    suspend = at_step(25, lambda: ctx.store.request_suspend([WORKER]))
    assert run_claimed(ctx, [first], tick=suspend) == [ids[0]]
    mine = WorkerContext(ctx.store, ctx.storage, 0.0, split=1, max_population=16)
    claimed = claim_members(mine, WORKER, ids[0])
    assert [job.id for _, job in claimed] == [ids[0]]  # its sibling starts at 0: not with it
    run_claimed(mine, claimed)
    assert logged(ctx, ids[0]) == [10, 20, 25, 30, 40]
    assert_same(latest(ctx, ids[0]), alone(CONFIG.replace(seed=1)))
