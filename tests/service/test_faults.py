"""The faults suite, a few random rounds (scripts/faults.py runs many): kill -9 of the server
while jobs train, save checkpoints or take uploads; one worker killed; a second server on the
same data dir; a full disk. After each: every job final (the interrupted ones finished after
a restart), no cancel lost, every file recorded and whole, no record without its file."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from tests.helpers import tiny_checkpoint_bytes
from tests.service.fault_rounds import KINDS, Rig, run_round
from tests.service.faults import tmpfs

# CURVEGAN_FAULTS_SEED replays a failed run's rounds.
SEED = int(os.environ.get("CURVEGAN_FAULTS_SEED", random.randrange(1 << 30)))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    upload = tiny_checkpoint_bytes(seed=4, steps=50, log_every=25, checkpoint_every=0)
    base = tmp_path_factory.mktemp("faults")
    with tmpfs(base / "data", "64m") as data_dir:
        rig = Rig(data_dir, upload, random.Random(SEED))
        rig.start()
        try:
            yield rig
        finally:
            rig.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_loses_nothing(rig: Rig, kind: str) -> None:
    print(f"seed {SEED}: {run_round(rig, kind)}")
