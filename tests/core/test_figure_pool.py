"""The figure pool: figures drawn in a worker process (the same bytes as drawing here), a
bounded number at once (429 beyond, before anything is drawn), a pixel cap (422 naming it),
and workers stopped once the pool is idle, so their memory comes back."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from gan_engine import x_grid
from service.core.figure_pool import FigurePool
from service.core.figures import FigureText, render
from service.domain import Invalid
from service.domain.errors import TooManyFigures

X = x_grid(15).numpy()
CURVES = np.stack([X * X * a + (a - 1) for a in (1.2, 1.5, 1.8)])
TEXT = FigureText("pool", 0.5, -1.38)


def _worker_pid() -> int:
    return os.getpid()


def test_a_figure_is_drawn_in_a_worker_process_as_it_would_be_here() -> None:
    async def go() -> tuple[bytes, int]:
        pool = FigurePool(workers=1, queue=0, max_pixels=4_000_000)
        try:
            with pool.slot():
                svg = await pool.render(X, CURVES, TEXT, "svg", 320, 240)
            pid = await asyncio.wrap_future(pool._executor().submit(_worker_pid))
            return svg, pid
        finally:
            pool.close()

    svg, pid = asyncio.run(go())
    assert pid != os.getpid()
    assert svg == render(X, CURVES, TEXT, "svg", 320, 240)


def test_beyond_workers_and_queue_a_figure_is_429_before_it_is_drawn() -> None:
    async def go() -> list[object]:
        pool = FigurePool(workers=1, queue=1, max_pixels=4_000_000)

        async def one() -> object:
            try:
                with pool.slot():
                    return await pool.render(X, CURVES, TEXT, "png", 400, 300)
            except TooManyFigures as exc:
                return exc

        try:
            return await asyncio.gather(*(one() for _ in range(5)))
        finally:
            pool.close()

    results = asyncio.run(go())
    refused = [r for r in results if isinstance(r, TooManyFigures)]
    drawn = [r for r in results if isinstance(r, bytes)]
    assert len(drawn) == 2 and len(refused) == 3, results
    assert "CURVEGAN_FIGURE_QUEUE" in refused[0].message and refused[0].retry_after > 0


def test_over_the_pixel_cap_is_422_naming_the_setting() -> None:
    pool = FigurePool(workers=1, queue=0, max_pixels=500_000)
    pool.check_size(1000, 500)
    with pytest.raises(Invalid) as caught:
        pool.check_size(1000, 501)
    assert caught.value.field == "width"
    assert "CURVEGAN_MAX_FIGURE_PIXELS" in caught.value.message and "501000" in caught.value.message


def test_an_idle_pool_stops_its_workers_and_starts_again_when_asked() -> None:
    async def go() -> tuple[bool, int]:
        pool = FigurePool(workers=1, queue=0, max_pixels=4_000_000, idle_stop_s=0.05)
        try:
            for _ in range(2):
                with pool.slot():
                    await pool.render(X, CURVES, TEXT, "png", 200, 200)
                await asyncio.sleep(0.3)
                stopped = pool._pool is None
            return stopped, pool.started
        finally:
            pool.close()

    stopped, started = asyncio.run(go())
    assert stopped and started == 2
