"""A job's growth is bounded on the one run path (in-process, real SQLite and checkpoint
files): checkpoint retention (the newest few, the best, and the one a queued job resumes
from), a metric history under its row cap, the data cap refusing saves as a full disk would,
and a final checkpoint that finds no room retried with backoff, never trained again."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import pytest

from gan_engine import TrainConfig
from service.domain import JobState
from service.runners.run import run_claimed
from service.runners.worker import WorkerContext
from service.storage import LocalStorage
from tests.service.runners.test_run import (
    WORKER,
    at_step,
    claim,
    create,
    job,
    logged,
    saved_steps,
)

EVERY_STEP = TrainConfig(steps=30, seed=5, log_every=1, checkpoint_every=1, batch_size=32)


def files(ctx: WorkerContext) -> set[str]:
    assert isinstance(ctx.storage, LocalStorage)
    return {p.name.removesuffix(".safetensors") for p in ctx.storage.root.glob("*.safetensors")}


def records(ctx: WorkerContext, job_id: str | None = None) -> set[str]:
    return {c.id for c in ctx.store.list_checkpoints(job_id, 1000, 0).items}


def test_checkpoint_every_step_keeps_the_newest_the_best_and_a_resume_source(
    ctx: WorkerContext,
) -> None:
    ctx = dataclasses.replace(ctx, keep_checkpoints=3)
    create(ctx, "j", EVERY_STEP)
    suspend = at_step(12, lambda: ctx.store.request_suspend([WORKER]))
    assert run_claimed(ctx, [claim(ctx, "j")], tick=suspend) == ["j"]
    first = ctx.store.list_checkpoints("j", 100, 0).items
    # The newest 3, and at most one best besides; every record has its file, and no more.
    assert len(first) <= 4 and files(ctx) == records(ctx)
    source = min(first, key=lambda c: c.step)  # another job will resume from the oldest left
    create(ctx, "r", EVERY_STEP, step=source.step, resumed_from=source.id)

    assert run_claimed(ctx, [claim(ctx, "j")]) == []
    done = job(ctx, "j")
    assert done.state is JobState.SUCCEEDED and done.step == 30
    kept = ctx.store.list_checkpoints("j", 100, 0).items
    assert source.id in {c.id for c in kept}, "the queued job's resume source was pruned"
    assert done.latest_checkpoint == max(kept, key=lambda c: c.step).id
    assert max(c.step for c in kept) == 30
    assert len(kept) <= 3 + 1 + 1  # the newest, the best, the resume source
    newest = sorted(c.step for c in kept)[-3:]
    assert newest == [28, 29, 30]
    assert files(ctx) == records(ctx)


def test_a_long_log_stays_under_the_row_cap_first_and_last_steps_kept(
    ctx: WorkerContext,
) -> None:
    ctx = dataclasses.replace(ctx, max_metric_rows=20)
    config = EVERY_STEP.replace(steps=300, checkpoint_every=0)
    create(ctx, "j", config)
    assert run_claimed(ctx, [claim(ctx, "j")]) == []
    steps = logged(ctx, "j")
    assert len(steps) <= 20 and steps[0] == 1 and steps[-1] == 300, steps
    assert job(ctx, "j").step == 300
    rows = ctx.store.metrics_since("j", 0, 1000, curves=True)
    assert sum(r["curves"] is not None for r in rows) <= 2 * 5  # trimmed every 5 logs
    assert rows[-1]["curves"] is not None  # the newest row keeps its curves for the figure


def fill_to_cap(ctx: WorkerContext, cap: int) -> WorkerContext:
    """A recorded upload that takes the data to ``cap`` exactly: every save is refused."""
    ctx.store.add_checkpoint(
        {
            "id": "big",
            "job_id": None,
            "step": 0,
            "config": EVERY_STEP.to_dict(),
            "size_bytes": cap - ctx.store.data_bytes(),
            "sha256": "0" * 64,
            "source": "upload",
        }
    )
    return dataclasses.replace(ctx, max_data_bytes=cap)


def once_trained(ctx: WorkerContext, job_id: str, act: Callable[[], object]) -> Callable[[], None]:
    """A tick that acts once the job has logged its last step: in the final save's wait."""
    done = {"acted": False}

    def tick() -> None:
        record = ctx.store.get_job(job_id)
        if not done["acted"] and record is not None and record.step == record.steps:
            done["acted"] = True
            act()

    return tick


def no_room_lines(caplog: pytest.LogCaptureFixture, step: int) -> int:
    return sum(
        f"no room for its checkpoint at step {step}" in r.getMessage() for r in caplog.records
    )


def test_a_final_save_without_room_fails_after_its_timeout_without_training_again(
    ctx: WorkerContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "curvegan.worker")
    config = EVERY_STEP.replace(steps=20, log_every=5, checkpoint_every=10)
    ctx = dataclasses.replace(fill_to_cap(ctx, 10**9), final_save_timeout_s=2.5)
    create(ctx, "j", config)
    assert run_claimed(ctx, [claim(ctx, "j")]) == []  # never back to the queue
    done = job(ctx, "j")
    assert done.state is JobState.FAILED and done.step == 20, done
    assert done.error is not None and "disk was full" in done.error, done.error
    assert "CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS" in done.error
    assert logged(ctx, "j") == [5, 10, 15, 20] and saved_steps(ctx, "j") == []
    # Retried with backoff (tries after 1 s and 2 s then the deadline), not in a tight loop.
    assert 2 <= no_room_lines(caplog, 20) <= 5, no_room_lines(caplog, 20)


def test_a_final_save_waits_for_room_then_succeeds_with_the_trained_weights(
    ctx: WorkerContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "curvegan.worker")
    config = EVERY_STEP.replace(steps=20, log_every=5, checkpoint_every=0)
    ctx = dataclasses.replace(fill_to_cap(ctx, 10**9), final_save_timeout_s=60)
    create(ctx, "j", config)
    freed = once_trained(ctx, "j", lambda: ctx.store.delete_checkpoint("big"))
    assert run_claimed(ctx, [claim(ctx, "j")], tick=freed) == []
    done = job(ctx, "j")
    assert done.state is JobState.SUCCEEDED and done.error is None, done
    assert logged(ctx, "j") == [5, 10, 15, 20] and saved_steps(ctx, "j") == [20]
    assert no_room_lines(caplog, 20) == 1  # the first try; the retry after 1 s found room


def test_a_cancel_during_the_final_saves_wait_ends_the_job_cancelled(ctx: WorkerContext) -> None:
    config = EVERY_STEP.replace(steps=20, log_every=5, checkpoint_every=0)
    ctx = dataclasses.replace(fill_to_cap(ctx, 10**9), final_save_timeout_s=600)
    create(ctx, "j", config)
    cancel = once_trained(ctx, "j", lambda: ctx.store.request_cancel("j"))
    assert run_claimed(ctx, [claim(ctx, "j")], tick=cancel) == []
    done = job(ctx, "j")
    assert done.state is JobState.CANCELLED and done.step == 20, done
    assert logged(ctx, "j") == [5, 10, 15, 20] and saved_steps(ctx, "j") == []
