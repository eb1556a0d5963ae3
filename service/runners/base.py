"""What the API needs of a runner, and the recovery every runner owns: jobs whose lease lapsed
go back to the queue (or end, see ``Store.recover_lapsed``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from ..domain import JobState
from ..store import Store

log = logging.getLogger("curvegan.runner")


class Runner(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def submit(self, job_id: str) -> None:
        """The job was queued in the store: make sure some worker will look at it."""

    @property
    def ready(self) -> bool: ...
    @property
    def busy_workers(self) -> int:
        """Workers of this server (local pool) training a job now; 0 for a remote pool."""


async def recover_lapsed(store: Store, max_losses: int) -> list[str]:
    """One recovery pass; returns the jobs put back in the queue."""
    moved = await asyncio.to_thread(store.recover_lapsed, max_losses)
    for job_id, state in moved.items():
        log.warning("job %s lost its worker (lease lapsed): now %s", job_id, state.value)
    return [job_id for job_id, state in moved.items() if state is JobState.QUEUED]


class SupervisedRunner:
    """A runner whose API side is one asyncio task (its supervisor loop): ready while it runs."""

    _task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._task is not None and not self._task.done()

    def _start_loop(self, loop: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(loop, name=name)

    async def _stop_loop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
