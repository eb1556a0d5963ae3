"""CheckpointService in-process: uploads checked before anything is stored, sampling rules,
the sampler cache, deletion."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.checkpoints import CheckpointService
from service.core.jobs import JobService
from service.domain import Conflict, Invalid, InvalidCheckpoint, NotFound, PayloadTooLarge
from service.domain.commands import CreateJob, SampleCurves
from service.storage import LocalStorage


def test_an_upload_keeps_the_exact_bytes_and_records_them(
    checkpoints: CheckpointService, storage: LocalStorage, tiny_checkpoint_bytes: bytes
) -> None:
    record = checkpoints.upload(tiny_checkpoint_bytes)
    assert record.source == "upload" and record.job_id is None and record.step == 4
    assert record.size_bytes == len(tiny_checkpoint_bytes) and record.config["hidden"] == 8
    assert storage.read(record.id) == tiny_checkpoint_bytes
    chunks, size = checkpoints.read_file(record.id, chunk_size=1000)
    assert size == len(tiny_checkpoint_bytes) and b"".join(chunks) == tiny_checkpoint_bytes
    assert [r.id for r in checkpoints.page(None, 10, 0).items] == [record.id]
    assert checkpoints.page("job_other", 10, 0).total == 0


@pytest.mark.parametrize(
    ("data", "kind", "field", "has"),
    [
        (b"", InvalidCheckpoint, "body", "empty body"),
        (b"x" * (1 << 20 | 1), PayloadTooLarge, None, "limit is 1048576"),
        (b"\x08\x00\x00\x00\x00\x00\x00\x00{}", InvalidCheckpoint, "header", "not a usable"),
    ],
)
def test_bad_uploads_store_nothing(
    checkpoints: CheckpointService,
    storage: LocalStorage,
    data: bytes,
    kind: type[Exception],
    field: str | None,
    has: str,
) -> None:
    with pytest.raises(kind, match=has) as caught:
        checkpoints.upload(data)
    assert getattr(caught.value, "field", None) == field
    assert checkpoints.page(None, 10, 0).total == 0
    assert not any(storage.root.iterdir()) if storage.root.exists() else True


def test_sampling_by_n_and_seed_or_by_latents(
    checkpoints: CheckpointService, tiny_checkpoint_bytes: bytes
) -> None:
    ck = checkpoints.upload(tiny_checkpoint_bytes).id
    a = checkpoints.sample(ck, SampleCurves(n=3, seed=5))
    b = checkpoints.sample(ck, SampleCurves(n=3, seed=5))
    assert a.curves.shape == (3, 15) and np.array_equal(a.curves, b.curves) and a.seed == 5
    z = [[0.0] * 5, [1.0] * 5]
    by_z = checkpoints.sample(ck, SampleCurves(z=z))
    assert by_z.curves.shape == (2, 15) and by_z.seed is None
    assert checkpoints.cache.misses == 1 and checkpoints.cache.hits == 2
    npy = checkpoints.to_npy(by_z)
    assert npy.startswith(b"\x93NUMPY")


@pytest.mark.parametrize(
    ("req", "field", "has"),
    [
        (SampleCurves(), "n", r"is required \(an integer in \[1, 100\]\)"),
        (SampleCurves(n=0), "n", r"must be in \[1, 100\], got 0"),
        (SampleCurves(n=101), "n", r"must be in \[1, 100\], got 101"),
        (SampleCurves(z=[[0.0] * 4]), "z.0", "must hold 5 numbers, got 4"),
        (SampleCurves(z=[[0.0] * 4 + [float("nan")]]), "z.0", "finite"),
        (SampleCurves(z=[[0.0] * 5], n=2), "n", r"must equal the number of z rows \(1\)"),
        (SampleCurves(z=[[0.0] * 5] * 101), "z", "between 1 and 100 rows, got 101"),
    ],
)
def test_bad_sample_requests_name_the_field(
    checkpoints: CheckpointService,
    tiny_checkpoint_bytes: bytes,
    req: SampleCurves,
    field: str,
    has: str,
) -> None:
    ck = checkpoints.upload(tiny_checkpoint_bytes).id
    with pytest.raises(Invalid, match=has) as caught:
        checkpoints.sample(ck, req)
    assert caught.value.field == field


def test_upper_bounds_are_inclusive(
    checkpoints: CheckpointService, tiny_checkpoint_bytes: bytes
) -> None:
    ck = checkpoints.upload(tiny_checkpoint_bytes).id
    assert checkpoints.sample(ck, SampleCurves(n=100)).curves.shape == (100, 15)
    assert checkpoints.sample(ck, SampleCurves(z=[[0.0] * 5] * 100)).curves.shape == (100, 15)


def test_deleting_drops_record_file_and_cache_but_not_a_resume_source(
    checkpoints: CheckpointService,
    jobs: JobService,
    storage: LocalStorage,
    tiny_checkpoint_bytes: bytes,
) -> None:
    ck = checkpoints.upload(tiny_checkpoint_bytes).id
    checkpoints.sample(ck, SampleCurves(n=1))
    job, _ = jobs.create(CreateJob(resume_from=ck, config={"steps": 8}))
    with pytest.raises(Conflict, match=f"queued job {job.id} resumes"):
        checkpoints.delete(ck)
    jobs.cancel(job.id)
    checkpoints.delete(ck)
    with pytest.raises(NotFound):
        checkpoints.get(ck)
    with pytest.raises(NotFound):
        checkpoints.sample(ck, SampleCurves(n=1))
    with pytest.raises(FileNotFoundError):
        storage.read(ck)
    with pytest.raises(NotFound):
        checkpoints.delete(ck)
