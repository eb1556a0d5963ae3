"""Figures drawn off the server's process, in a small bounded pool of worker processes.

Drawing a 2000 x 2000 PNG in the server took its GIL for ~0.2 s a figure and left what
matplotlib allocated in the server's heap: 40 large figures in a row held ~680 MB and stalled
every request for 2.5-2.9 s. Here the event loop only sends the curves (64 x 1 024 floats at
most) and receives the image's bytes; the drawing and its memory belong to a worker process,
which is recycled after a number of figures and stopped once the pool has been idle, so the
memory comes back. A request beyond the pool's workers and queue is refused at once (429 with
Retry-After), never queued without bound; a figure over the pixel cap is a 422.

Workers are spawned, not forked: a fork of the server would copy its threads' locks and its
torch state. A spawned worker imports this module, numpy and matplotlib, never torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from ..domain import Invalid
from ..domain.errors import TooManyFigures
from .figures import FigureText, Format, render

# A worker draws this many figures, then a fresh one takes its place: matplotlib's caches
# (fonts, paths, the largest canvas it drew) stay bounded by the figures one worker drew.
TASKS_PER_WORKER = 20
# Seconds without a figure after which the pool's workers stop and give their memory back
# (a worker that drew 2000 x 2000 figures holds ~130 MB); the next figure starts one again,
# ~1 s for a process and matplotlib's import, once per burst of figures.
IDLE_STOP_S = 10.0


class FigurePool:
    def __init__(
        self, *, workers: int, queue: int, max_pixels: int, idle_stop_s: float = IDLE_STOP_S
    ) -> None:
        self.workers = workers
        self.capacity = workers + queue  # figures drawn or waiting at once
        self.max_pixels = max_pixels
        self.idle_stop_s = idle_stop_s
        self._pool: ProcessPoolExecutor | None = None
        self._pending = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self.started = 0  # pools started, ever (each start is one after an idle stop)

    def check_size(self, width: int, height: int) -> None:
        """422 for a figure over the pixel cap, before anything is sampled or drawn."""
        if width * height > self.max_pixels:
            raise Invalid(
                "width",
                f"a {width} x {height} figure is {width * height} pixels; the most is "
                f"{self.max_pixels} (CURVEGAN_MAX_FIGURE_PIXELS): ask for a smaller width or "
                "height",
            )

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """A place in the pool for one figure, held while its curves are sampled and drawn;
        429 when all are taken, before anything is sampled."""
        if self._pending >= self.capacity:
            raise TooManyFigures(
                f"{self._pending} figures are being drawn or wait, the most this server holds "
                f"(CURVEGAN_FIGURE_WORKERS + CURVEGAN_FIGURE_QUEUE = {self.capacity}); "
                "retry shortly"
            )
        self._pending += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        try:
            yield
        finally:
            self._pending -= 1
            if self._pending == 0 and self._pool is not None:
                loop = asyncio.get_running_loop()
                self._idle_timer = loop.call_later(self.idle_stop_s, self._stop_idle)

    async def render(
        self,
        x: np.ndarray,
        curves: np.ndarray,
        text: FigureText,
        fmt: Format,
        width: int,
        height: int,
    ) -> bytes:
        """The figure's bytes, drawn by a worker, within a ``slot()``. A request cancelled
        meanwhile takes its figure out of the queue (a figure being drawn finishes)."""
        try:
            future = self._executor().submit(render, x, curves, text, fmt, width, height)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the next figure gets a fresh pool.
            self._shutdown()
            raise

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=TASKS_PER_WORKER,
            )
            self.started += 1
        return self._pool

    def _stop_idle(self) -> None:
        self._idle_timer = None
        if self._pending == 0:
            self._shutdown()

    def _shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Not waiting: the loop must not block while a worker exits.
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
