"""Runs jobs. The routes see only the ``Executor`` interface; progress flows through the store.

``LocalProcessExecutor`` starts one spawned process per running job, at most
``max_concurrent`` at once, taking queued jobs oldest first. A distributed runner would
implement the same four methods and pick jobs from the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Protocol

from .store import FAILED, RUNNING, Store
from .worker import Signals, WorkerSpec, run_job

log = logging.getLogger("curvegan.executor")

# How often the dispatcher looks for finished workers and queued jobs when nothing wakes it.
TICK_S = 0.5


class Executor(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def submit(self, job_id: str) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def request_checkpoint(self, job_id: str) -> bool: ...
    @property
    def ready(self) -> bool: ...


@dataclass
class _Worker:
    process: BaseProcess
    signals: Signals


class LocalProcessExecutor:
    def __init__(
        self, store: Store, *, db_url: str, files_dir: str, max_concurrent: int, nice: int
    ) -> None:
        self.store = store
        self.db_url = db_url
        self.files_dir = files_dir
        self.max_concurrent = max_concurrent
        self.nice = nice
        self._ctx = mp.get_context("spawn")
        self._workers: dict[str, _Worker] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def running(self) -> int:
        return len(self._workers)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="curvegan-dispatcher")

    def submit(self, job_id: str) -> None:
        # The job is already queued in the store; the dispatcher takes it when a slot frees.
        if self._wake is not None:
            self._wake.set()

    def cancel(self, job_id: str) -> None:
        worker = self._workers.get(job_id)
        if worker is not None:
            worker.signals.cancel.set()

    def request_checkpoint(self, job_id: str) -> bool:
        worker = self._workers.get(job_id)
        if worker is None:
            return False
        worker.signals.save_now.set()
        return True

    async def stop(self, timeout: float = 30.0) -> None:
        """Asks every worker to save and return its job to the queue, then waits for them."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for worker in self._workers.values():
            worker.signals.suspend.set()
        for job_id, worker in list(self._workers.items()):
            await asyncio.to_thread(worker.process.join, timeout)
            if worker.process.is_alive():
                log.warning("worker for %s did not stop in %.0fs; killing it", job_id, timeout)
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, 5)
        self._workers.clear()

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.to_thread(self._reap)
                await self._dispatch()
            except Exception:  # the dispatcher must outlive any one bad tick
                log.exception("dispatcher tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()

    def _reap(self) -> None:
        for job_id, worker in list(self._workers.items()):
            if worker.process.is_alive():
                continue
            worker.process.join()
            del self._workers[job_id]
            code = worker.process.exitcode
            # A worker records its own outcome; one still "running" died without a word.
            if self.store.transition(
                job_id,
                FAILED,
                only_from={RUNNING},
                error=f"worker process exited unexpectedly (exit code {code})",
            ):
                log.error("worker for %s exited with code %s", job_id, code)

    async def _dispatch(self) -> None:
        free = self.max_concurrent - len(self._workers)
        if free <= 0:
            return
        for job_id in await asyncio.to_thread(self.store.queued_job_ids, free):
            if await asyncio.to_thread(self.store.transition, job_id, RUNNING):
                self._spawn(job_id)

    def _spawn(self, job_id: str) -> None:
        ctx = self._ctx
        signals = Signals(cancel=ctx.Event(), suspend=ctx.Event(), save_now=ctx.Event())
        spec = WorkerSpec(job_id, self.db_url, self.files_dir, os.getpid(), self.nice)
        process = ctx.Process(
            target=run_job, args=(spec, signals), name=f"curvegan-{job_id}", daemon=True
        )
        process.start()
        self._workers[job_id] = _Worker(process, signals)
        log.info("job %s started in process %s", job_id, process.pid)
