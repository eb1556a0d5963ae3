"""The embedded runner: a pool of warm worker processes (torch imported once) that take jobs
from the store. A crashed or hung worker is replaced and its job recovered at once; a job's
failure is recorded by its worker and never takes the pool down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event, Semaphore
from typing import Any

from ..logs import configure as configure_logs
from ..settings import Settings
from ..store import Store
from .base import SupervisedRunner, recover_lapsed

log = logging.getLogger("curvegan.runner.local")

# How often the supervisor checks its processes and looks for lapsed leases.
TICK_S = 0.5
# An idle worker looks at the store this often even unwoken: jobs queued by another server.
IDLE_POLL_S = 1.0


@dataclass
class _Slot:
    worker_id: str
    process: BaseProcess
    heartbeat: Synchronized[float]  # time.time() of the worker's last sign of life
    busy: Synchronized[int]


class LocalRunner(SupervisedRunner):
    def __init__(self, store: Store, settings: Settings) -> None:
        from .worker import check_device  # torch: imported here, as the API process does

        # At the server's start, before any worker process: a device it lacks is a clear
        # error now rather than workers that die and are replaced for ever.
        check_device(settings.device)
        self.store = store
        self.settings = settings
        self.size = settings.max_concurrent_jobs
        self._ctx = mp.get_context("spawn")
        self._wake: Semaphore = self._ctx.Semaphore(0)
        self._stop: Event = self._ctx.Event()
        self._slots: list[_Slot] = []

    @property
    def busy_workers(self) -> int:
        return sum(slot.busy.value for slot in self._slots)

    async def start(self) -> None:
        self._slots = [self._spawn() for _ in range(self.size)]
        self._start_loop(self._supervise(), "curvegan-pool")

    def submit(self, job_id: str) -> None:
        self._wake.release()

    async def stop(self, timeout: float = 30.0) -> None:
        """Asks every worker to save and return its job to the queue, then waits for them."""
        await self._stop_loop()
        self._stop.set()
        ids = [slot.worker_id for slot in self._slots]
        with contextlib.suppress(Exception):  # a store that is gone cannot be asked
            await asyncio.to_thread(self.store.request_suspend, ids)
        for _ in self._slots:
            self._wake.release()
        for slot in self._slots:
            await asyncio.to_thread(slot.process.join, timeout)
            if slot.process.is_alive():
                log.warning("worker %s did not stop in %.0fs; killing it", slot.worker_id, timeout)
                slot.process.kill()
                await asyncio.to_thread(slot.process.join, 5)
        self._slots.clear()

    def _spawn(self) -> _Slot:
        heartbeat = self._ctx.Value("d", time.time(), lock=False)
        busy = self._ctx.Value("i", 0, lock=False)
        process = self._ctx.Process(
            target=pool_worker_main,
            args=(self.settings, self._wake, self._stop, heartbeat, busy, os.getpid()),
            name="curvegan-worker",
            daemon=True,
        )
        process.start()
        assert process.pid is not None
        return _Slot(worker_id_of(process.pid), process, heartbeat, busy)  # type: ignore[arg-type]

    async def _supervise(self) -> None:
        while True:
            try:
                await self._check_workers()
                if await recover_lapsed(self.store, self.settings.max_worker_losses):
                    self._wake.release()
            except Exception:  # the supervisor must outlive any one bad tick
                log.exception("pool supervisor tick failed")
            await asyncio.sleep(TICK_S)

    async def _check_workers(self) -> None:
        # A worker that stops beating for a whole lease while training is hung (the lease it
        # cannot renew has lapsed too): kill it; it is then replaced like a crashed one.
        wedged_after = self.settings.lease_seconds
        for i, slot in enumerate(self._slots):
            hung = slot.busy.value and time.time() - slot.heartbeat.value > wedged_after
            if hung and slot.process.is_alive():
                log.error(
                    "worker %s hung (no heartbeat for %.0fs); killing it",
                    slot.worker_id,
                    wedged_after,
                )
                slot.process.kill()
                await asyncio.to_thread(slot.process.join, 5)
            if slot.process.is_alive():
                continue
            slot.process.join()
            log.error(
                "worker %s exited unexpectedly (exit code %s); replacing it",
                slot.worker_id,
                slot.process.exitcode,
            )
            moved = await asyncio.to_thread(
                self.store.recover_lapsed, self.settings.max_worker_losses, [slot.worker_id]
            )
            for job_id, state in moved.items():
                log.warning("job %s lost its worker: now %s", job_id, state.value)
            self._slots[i] = self._spawn()
            if moved:
                self._wake.release()


def worker_id_of(pid: int) -> str:
    """The pool process's id in the store: the host and pid say where to look for it."""
    return f"local:{socket.gethostname()}:{pid}"


def pool_worker_main(
    settings: Settings,
    wake: Semaphore,
    stop: Event,
    heartbeat: Any,
    busy: Any,
    parent_pid: int,
) -> None:
    """Entry point of a pool process: claim, train, repeat until the pool stops."""
    # Ctrl-C in a terminal reaches the whole process group: the server then stops its workers
    # in order (save, back to the queue), which a KeyboardInterrupt here would cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a spawned process starts with logging unconfigured: its job lines would be lost
    configure_logs(settings.log_level)
    # Here, not at the top: the API process imports this module, and these import torch.
    from .claims import claim_members
    from .run import run_claimed
    from .worker import start_worker

    ctx = start_worker(settings, processes=settings.max_concurrent_jobs)
    worker_id = worker_id_of(os.getpid())

    def tick() -> None:
        if os.getppid() != parent_pid:
            # The server died (kill -9): leave the job; its lease lapses and whichever server
            # runs on this store then re-queues it to resume from its latest checkpoint.
            os._exit(0)
        heartbeat.value = time.time()

    try:
        while not stop.is_set():
            tick()
            try:
                claimed = claim_members(ctx, worker_id)
            except Exception:  # the store is down for a moment: the worker waits, not dies
                log.exception("worker %s could not claim a job", worker_id)
                claimed = []
            if not claimed:
                wake.acquire(timeout=IDLE_POLL_S)
                continue
            if stop.is_set():  # claimed while the pool was being stopped: give them back
                for lease, _ in claimed:
                    ctx.store.release(lease)
                break
            busy.value = 1
            try:
                run_claimed(ctx, claimed, tick=tick)
            finally:
                busy.value = 0
    finally:
        ctx.store.dispose()
