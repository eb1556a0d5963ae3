"""Jobs: create (validated and normalised once, here), read, cancel, delete, and checkpoint
running jobs, through the store and the runner."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gan_engine import ConfigError, TrainConfig
from gan_engine.config import RESUME_MUTABLE

from ..domain import CheckpointRecord, Conflict, Invalid, JobRecord, JobState, NotFound
from ..domain.commands import (
    CreateJob,
    check_idempotency_key,
    no_preset_in,
    preset_of,
    request_hash,
    with_seed,
)
from ..domain.errors import InsufficientStorage
from ..domain.records import new_id
from ..runners import Runner
from ..storage import CheckpointStorage
from ..storage.saving import check_data_cap
from ..store import MissingCheckpoint, Page, Store
from .creation import creating

# How long POST /v1/jobs/{id}/checkpoints waits for the running job's next step to save.
SAVE_WAIT_S = 30.0
# Room a first checkpoint needs at least (the tutorial's is 67 KB).
MIN_CHECKPOINT_BYTES = 64 * 1024


def _config_error(exc: ConfigError) -> Invalid:
    return Invalid(f"config.{exc.field}", exc.message)


class JobService:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        *,
        max_queued: int,
        storage: CheckpointStorage | None = None,
        max_data_bytes: int = 0,
    ) -> None:
        self.store = store
        self.runner = runner
        self.max_queued = max_queued
        self.storage = storage
        self.max_data_bytes = max_data_bytes  # CURVEGAN_MAX_DATA_BYTES: a save past it is skipped

    def get(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job

    def page(
        self, state: str | None, limit: int, offset: int, *, sweep_id: str | None = None
    ) -> Page[JobRecord]:
        return self.store.list_jobs(state, limit, offset, sweep_id=sweep_id)

    def metrics(self, job_id: str, since_step: int, limit: int) -> list[dict[str, Any]]:
        """The job's logged rows after ``since_step``, ascending (NotFound for no job)."""
        self.get(job_id)
        return self.store.metrics_since(job_id, since_step, limit)

    @property
    def reads_inline(self) -> bool:
        """Whether a short read may run on the event loop: the store is a local file."""
        return self.store.local

    def _config_for(self, cmd: CreateJob) -> tuple[TrainConfig, int]:
        """The complete config (seed None when not asked for) and the step the job starts at."""
        requested = dict(cmd.config or {})
        if cmd.resume_from is None:
            preset = preset_of(cmd.preset, requested)
            try:
                config = TrainConfig.from_preset(preset, **requested)
            except ConfigError as exc:
                raise _config_error(exc) from None
            return config, 0
        no_preset_in(requested)
        if cmd.preset is not None:
            raise Invalid("preset", "cannot be given with resume_from: the job keeps its recipe")
        ckpt = self.store.get_checkpoint(cmd.resume_from)
        if ckpt is None:
            raise NotFound(f"no checkpoint with id {cmd.resume_from!r}", field="resume_from")
        base = dict(ckpt.config)
        for key, value in requested.items():
            if key not in RESUME_MUTABLE and base.get(key) != value:
                raise Invalid(
                    f"config.{key}",
                    "cannot change when resuming from a checkpoint; only "
                    f"{', '.join(sorted(RESUME_MUTABLE))} can",
                )
        try:
            config = TrainConfig.from_dict({**base, **requested})
        except ConfigError as exc:
            raise _config_error(exc) from None
        if config.steps <= ckpt.step:
            raise Invalid(
                "config.steps",
                f"must be greater than the checkpoint's step {ckpt.step}, got {config.steps}",
            )
        return config, ckpt.step

    def create(self, cmd: CreateJob) -> tuple[JobRecord, bool]:
        """Queues the job (or, for an Idempotency-Key seen before with the same request, finds
        the first one); returns it and whether it is new."""
        key = cmd.idempotency_key
        check_idempotency_key(key)
        config, start_step = self._config_for(cmd)
        meaning = {"name": cmd.name, "resume_from": cmd.resume_from, "config": config.to_dict()}
        full = f"the queue is full ({{}} jobs waiting, limit {self.max_queued})"
        try:
            with creating("job", key, full.format):
                job, created = self.store.create_job(
                    job_id=new_id("job"),
                    name=cmd.name,
                    config=with_seed(config).to_dict(),
                    step=start_step,
                    resumed_from=cmd.resume_from,
                    idempotency_key=key,
                    request_hash=request_hash(key, meaning),
                    max_queued=self.max_queued,
                )
        except MissingCheckpoint:
            raise NotFound(
                f"no checkpoint with id {cmd.resume_from!r} (deleted just now)",
                field="resume_from",
            ) from None
        if created:
            self.runner.submit(job.id)
        return job, created

    def cancel(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job.state.is_final:
            raise Conflict(f"job {job_id} is already {job.state}")
        # The request is in the store, so it reaches the worker wherever it runs (within its
        # next lease renewal, about a second); a queued job has no worker and ends here.
        self.store.request_cancel(job_id)
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.sweep_id is not None:
            # A sweep keeps all its members: its counts, best member and state stay whole.
            raise Conflict(
                f"job {job_id} is a member of sweep {job.sweep_id}; delete the sweep instead"
            )
        if not job.state.is_final or not self.store.delete_job(job_id):
            raise Conflict(f"job {job_id} is {job.state}; only a finished job can be deleted")

    async def _room_for_checkpoint(self, job_id: str, latest: CheckpointRecord | None) -> None:
        """507 when the files' disk has no room for the checkpoint: a worker that finds the
        disk full skips the save and trains on, so waiting for it would end in a timeout."""
        need = latest.size_bytes if latest else MIN_CHECKPOINT_BYTES
        if self.max_data_bytes:  # the worker would skip the save as on a full disk
            await asyncio.to_thread(check_data_cap, self.store, need, self.max_data_bytes)
        free = await asyncio.to_thread(self.storage.free_bytes) if self.storage else None
        if free is not None and free < need:
            raise InsufficientStorage(
                f"insufficient storage: the server's disk is full ({free} bytes free, a "
                f"checkpoint of job {job_id} needs about {need}); retry once space is freed"
            )

    async def checkpoint_now(self, job_id: str) -> CheckpointRecord:
        job = await asyncio.to_thread(self.get, job_id)
        before = await asyncio.to_thread(self.store.list_checkpoints, job_id, 1, 0)
        if job.state is JobState.RUNNING:
            await self._room_for_checkpoint(job_id, before.items[0] if before.items else None)
        if job.state is not JobState.RUNNING or not await asyncio.to_thread(
            self.store.request_save, job_id
        ):
            latest = f" (its latest is {job.latest_checkpoint})" if job.latest_checkpoint else ""
            raise Conflict(
                f"job {job_id} is {job.state}; only a running job can save a checkpoint{latest}"
            )
        newest = before.items[0].seq if before.items else 0
        deadline = time.monotonic() + SAVE_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            page = await asyncio.to_thread(self.store.list_checkpoints, job_id, 1, 0)
            if page.items and page.items[0].seq > newest:
                return page.items[0]
        raise Conflict(f"job {job_id} did not save a checkpoint within {SAVE_WAIT_S:.0f}s")
