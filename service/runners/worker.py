"""A worker process, whichever runner started it (a warm process of the local pool, or a
Celery pool process on a worker node): its start-up and what its jobs are trained with."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gan_engine import Population, TrainConfig

from ..settings import Settings
from ..storage import CheckpointStorage, make_storage
from ..store import Store


class DeviceUnavailable(RuntimeError):
    """CURVEGAN_DEVICE names a device this machine does not have: the workers do not start."""


def check_device(device: str) -> None:
    """Raises DeviceUnavailable, naming the setting, unless ``device`` (CURVEGAN_DEVICE,
    already of the form cpu, cuda or cuda:N) is on this machine. Safe before a fork: with
    the NVML check torch asks the driver without creating a CUDA context, which a forked
    child (Celery's prefork pool) could not use."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"CURVEGAN_DEVICE={device}: torch.cuda is not available on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "set CURVEGAN_DEVICE=cpu, or run the workers where a CUDA device is"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise DeviceUnavailable(
            f"CURVEGAN_DEVICE={device}: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )


def warm_up(device: str = "cpu") -> None:
    """A process's first training run pays ~1 s of first use (torch's lazy imports behind
    the kernels, first-call dispatch of every kernel; on a GPU, the CUDA context): pay it
    when the worker starts, not in its first job. Runs in each worker process after any
    fork (a parent that ran torch ops could deadlock its forked children)."""
    pop = Population([TrainConfig(steps=2, log_every=1, checkpoint_every=0, seed=0)], device=device)
    pop.run()
    pop.member_checkpoint(0).to_bytes()


@dataclass(frozen=True)
class WorkerContext:
    store: Store
    storage: CheckpointStorage
    lease_s: float
    # A sweep is split between this many worker processes (each claims its share of the
    # queued members of one shape), and one process trains at most max_population at once.
    split: int = 1
    max_population: int = 1
    # Where populations train (CURVEGAN_DEVICE); their checkpoints are CPU tensors anyway.
    device: str = "cpu"
    # What a job may leave behind (CURVEGAN_KEEP_CHECKPOINTS, CURVEGAN_MAX_METRIC_ROWS,
    # CURVEGAN_MAX_DATA_BYTES), and how long a final checkpoint that finds no room is retried
    # (CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS): the settings' defaults.
    keep_checkpoints: int = 5
    max_metric_rows: int = 10_000
    max_data_bytes: int = 0
    final_save_timeout_s: float = 1800.0

    @property
    def renew_every_s(self) -> float:
        # Three renewals per lease: one late renewal never loses it; capped at 1 s so that
        # a cancel reaches the job within about a second.
        return min(1.0, self.lease_s / 3)


def start_worker(settings: Settings, processes: int) -> WorkerContext:
    """A worker process's start, the same under either runner: a lower priority than the
    API's, torch warm, and connections of its own to the store and the checkpoint storage
    (never shared across a fork). ``processes``: the worker processes a sweep is split
    between unless ``settings.sweep_split`` says otherwise (this server's pool, or one
    Celery node's)."""
    check_device(settings.device)
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    warm_up(settings.device)
    return WorkerContext(
        Store(settings.db_url),
        make_storage(settings.storage_url, settings.files_dir),
        settings.lease_seconds,
        split=settings.sweep_split or processes,
        max_population=settings.max_population,
        device=settings.device,
        keep_checkpoints=settings.keep_checkpoints,
        max_metric_rows=settings.max_metric_rows,
        max_data_bytes=settings.max_data_bytes,
        final_save_timeout_s=settings.final_save_timeout_seconds,
    )
