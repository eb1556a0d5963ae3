"""The API process samples on one intra-op thread: with the cores busy training, torch's
thread pool made a 16-curve sample cost 20x the CPU (benchmarks/load.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from service.api.app import create_app
from service.settings import Settings


@pytest.fixture
def torch_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what a 2-core machine starts with
    yield
    torch.set_num_threads(before)


def test_the_server_samples_on_one_intra_op_thread(tmp_path: Path, torch_threads: None) -> None:
    app = create_app(Settings(data_dir=tmp_path, max_concurrent_jobs=1))

    async def started() -> int:
        async with app.router.lifespan_context(app):
            return torch.get_num_threads()

    assert asyncio.run(started()) == 1
