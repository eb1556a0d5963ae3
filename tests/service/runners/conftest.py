"""The run path in this process: a worker's context over real SQLite and files in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.runners.worker import WorkerContext
from service.storage import LocalStorage
from service.store import Store


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    # lease_s 0: every should_stop renews, so a request reaches the run at the next step.
    yield WorkerContext(store, LocalStorage(tmp_path / "files"), lease_s=0.0)
    store.dispose()
