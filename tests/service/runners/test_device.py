"""CURVEGAN_DEVICE: checked where workers start (a clear error naming the setting on a machine
without the device), and, on a machine with a CUDA device, the run path training there while
its checkpoints stay CPU tensors that sample and resume like any other.

The GPU tests skip on a machine without CUDA (CI here is CPU-only), whatever
CURVEGAN_TEST_REQUIRE_SERVICES says: a GPU is hardware, not a service CI could start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from gan_engine import TrainConfig, checkpoint_from_bytes
from gan_engine.sampling import CurveSampler
from service.api.app import create_app
from service.domain import JobState
from service.runners.claims import claim_members
from service.runners.run import run_claimed
from service.runners.worker import DeviceUnavailable, WorkerContext, check_device, start_worker
from service.settings import Settings

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA,
    reason="no CUDA device: the GPU path is measured by scripts/gpu_check.py on a machine with one",
)
CONFIG = TrainConfig(steps=40, log_every=10, checkpoint_every=0, batch_size=32)


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CUDA", "cuda:1:2", "mps", ""])
def test_a_device_not_of_the_form_cpu_cuda_or_cuda_n_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURVEGAN_DEVICE", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "device" in str(caught.value)


@pytest.mark.parametrize("value", ["cpu", "cuda", "cuda:0", "cuda:12"])
def test_cpu_cuda_and_cuda_n_are_the_forms_taken(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURVEGAN_DEVICE", value)
    assert Settings().device == value


def test_the_device_is_cpu_by_default() -> None:
    assert Settings().device == "cpu"
    check_device("cpu")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA device")
@pytest.mark.parametrize("value", ["cuda", "cuda:0"])
def test_cuda_without_a_cuda_device_stops_the_server_at_start_naming_the_setting(
    value: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, device=value, max_concurrent_jobs=1)
    with pytest.raises(DeviceUnavailable) as caught:
        create_app(settings)
    message = str(caught.value)
    assert f"CURVEGAN_DEVICE={value}" in message and "CURVEGAN_DEVICE=cpu" in message
    assert "torch.cuda is not available" in message
    with pytest.raises(DeviceUnavailable, match=f"CURVEGAN_DEVICE={value}"):
        start_worker(settings, processes=1)  # a Celery node's processes, likewise


def test_a_cuda_index_past_the_machines_devices_is_refused() -> None:
    past = torch.cuda.device_count() if CUDA else 0
    with pytest.raises(DeviceUnavailable, match=f"CURVEGAN_DEVICE=cuda:{past}"):
        check_device(f"cuda:{past}")


def sweep(ctx: WorkerContext, n: int) -> list[str]:
    ids = [f"m{i}" for i in range(n)]
    ctx.store.create_sweep(
        sweep_id="s",
        name=None,
        config={},
        best_by="w1_a",
        members=[(job_id, CONFIG.replace(seed=i).to_dict()) for i, job_id in enumerate(ids)],
        idempotency_key=None,
        request_hash=None,
    )
    return ids


@needs_cuda
def test_a_sweep_trains_on_the_gpu_and_its_checkpoints_are_cpu_tensors(
    ctx: WorkerContext,
) -> None:
    gpu = replace(ctx, device="cuda", split=1, max_population=16)
    ids = sweep(gpu, 4)
    claimed = claim_members(gpu, "w1")
    assert len(claimed) == 4
    assert run_claimed(gpu, claimed) == []
    for job_id in ids:
        done = gpu.store.get_job(job_id)
        assert done is not None and done.state is JobState.SUCCEEDED, done
        assert done.latest_checkpoint is not None
        ckpt = checkpoint_from_bytes(gpu.storage.read(done.latest_checkpoint))
        assert {t.device.type for t in ckpt.tensors.values()} == {"cpu"}
        sampler = CurveSampler.from_checkpoint(ckpt)  # sampling stays on the CPU
        sampler.probe()


@needs_cuda
def test_a_member_suspended_on_the_gpu_resumes_there_from_its_checkpoint(
    ctx: WorkerContext,
) -> None:
    gpu = replace(ctx, device="cuda", split=1, max_population=1)
    (job_id,) = sweep(gpu, 1)
    claimed = claim_members(gpu, "w1")
    calls = {"n": 0}

    def suspend_at_25() -> None:
        if calls["n"] == 25:
            gpu.store.request_suspend(["w1"])
        calls["n"] += 1

    assert run_claimed(gpu, claimed, tick=suspend_at_25) == [job_id]
    resumed = claim_members(gpu, "w1")
    assert [job.id for _, job in resumed] == [job_id]
    assert run_claimed(gpu, resumed) == []
    done = gpu.store.get_job(job_id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.step == 40
