"""Use cases in-process: real SQLite and real checkpoint files in a temp dir, no server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gan_engine import Population, TrainConfig
from service.core.checkpoints import CheckpointService
from service.core.jobs import JobService
from service.core.sweeps import SweepService
from service.storage import LocalStorage
from service.store import Store


@dataclass
class RecordingRunner:
    """The runner's side of a use case: which jobs it was told to look at."""

    submitted: list[str] = field(default_factory=list)
    ready: bool = True
    busy_workers: int = 0

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def jobs(store: Store, runner: RecordingRunner, storage: LocalStorage) -> JobService:
    return JobService(store, runner, max_queued=5, storage=storage)


@pytest.fixture
def sweeps(store: Store, runner: RecordingRunner) -> SweepService:
    return SweepService(store, runner, max_queued=20, max_members=6)


@pytest.fixture
def checkpoints(store: Store, storage: LocalStorage) -> CheckpointService:
    return CheckpointService(
        store, storage, max_upload_bytes=1 << 20, max_samples=100, cache_size=2
    )


@pytest.fixture(scope="session")
def tiny_checkpoint_bytes() -> bytes:
    """A real checkpoint of a 4-step tutorial run (hidden 8): what an upload sends."""
    pop = Population([TrainConfig(steps=4, hidden=8, log_every=2, checkpoint_every=0, seed=1)])
    pop.run()
    return pop.member_checkpoint(0).to_bytes()
