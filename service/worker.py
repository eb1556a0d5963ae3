"""The code a job's worker process runs: the engine's loop, with hooks wired to the store.

It runs in a fresh (spawned) process per job, so training never shares the API's threads or
interpreter lock, and a crash or divergence kills only the job.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass, replace
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from gan_engine import Checkpoint, TrainConfig, Trainer, TrainingDiverged, checkpoint_from_bytes

from .storage import LocalStorage
from .store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Store

# How often the worker also reads the store's cancel flag (the event is the fast path).
STORE_POLL_S = 1.0


@dataclass(frozen=True)
class WorkerSpec:
    job_id: str
    db_url: str
    files_dir: str
    parent_pid: int
    nice: int


@dataclass
class Signals:
    cancel: Event  # the user cancelled: stop, save, end cancelled
    suspend: Event  # the server shuts down: stop, save, go back to the queue
    save_now: Event  # a checkpoint was requested: save at the next step


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def save_checkpoint(
    store: Store,
    storage: LocalStorage,
    ckpt: Checkpoint,
    *,
    job_id: str | None,
    source: str,
    data: bytes | None = None,
) -> dict[str, Any]:
    """Writes the file (``data``, or ``ckpt`` serialised) first, then the record: a record
    never points at a missing file."""
    checkpoint_id = new_id("ck")
    size, sha = storage.put(checkpoint_id, ckpt.to_bytes() if data is None else data)
    metrics = ckpt.metrics or {}
    return store.add_checkpoint(
        {
            "id": checkpoint_id,
            "job_id": job_id,
            "step": ckpt.step,
            "config": ckpt.config.to_dict(),
            "metrics": {
                k: metrics[k] for k in ("d_loss", "g_loss", "d_accuracy", "d_score") if k in metrics
            }
            or None,
            "quality": {k: metrics[k] for k in ("in_band", "resid", "w1_a") if k in metrics}
            or None,
            "size_bytes": size,
            "sha256": sha,
            "source": source,
        }
    )


def run_job(spec: WorkerSpec, signals: Signals) -> None:
    """Entry point of the worker process."""
    # Ctrl-C in a terminal reaches the whole process group: the server then stops its workers
    # in order (save, back to the queue), which a KeyboardInterrupt here would cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.nice:
        os.nice(spec.nice)
    store = Store(spec.db_url)
    storage = LocalStorage(Path(spec.files_dir))
    try:
        _train(spec, signals, store, storage)
    except TrainingDiverged as exc:
        store.transition(spec.job_id, FAILED, error=str(exc))
    except Exception as exc:  # a job's failure must be recorded, whatever it was
        store.transition(spec.job_id, FAILED, error=f"{type(exc).__name__}: {exc}")
    finally:
        store.dispose()


def _train(spec: WorkerSpec, signals: Signals, store: Store, storage: LocalStorage) -> None:
    job = store.get_job(spec.job_id)
    if job is None or job["state"] != RUNNING:
        return
    config = TrainConfig.from_dict(job["config"])
    start_from = job["latest_checkpoint"] or job["resumed_from"]
    if start_from:
        ckpt = checkpoint_from_bytes(storage.read(start_from))
        # The job may train longer or log differently than the run that saved the checkpoint.
        trainer = Trainer.from_checkpoint(replace(ckpt, config=config))
        store.forget_metrics_after(spec.job_id, ckpt.step)
    else:
        trainer = Trainer(config)

    last_poll = time.monotonic()
    cancelled = job["cancel_requested"]

    def should_stop() -> bool:
        nonlocal last_poll, cancelled
        if os.getppid() != spec.parent_pid:
            # The server died (kill -9): leave the job as it is; the next server re-queues it
            # and resumes from its latest checkpoint.
            os._exit(0)
        if signals.cancel.is_set():
            cancelled = True
        now = time.monotonic()
        if not cancelled and now - last_poll > STORE_POLL_S:
            last_poll = now
            current = store.get_job(spec.job_id)
            cancelled = current is None or bool(current["cancel_requested"])
        return cancelled or signals.suspend.is_set()

    def should_checkpoint() -> bool:
        if signals.save_now.is_set():
            signals.save_now.clear()
            return True
        return False

    result = trainer.run(
        on_log=lambda r: store.record_progress(spec.job_id, r.step, r.to_dict()),
        should_stop=should_stop,
        should_checkpoint=should_checkpoint,
        on_checkpoint=lambda c: save_checkpoint(
            store, storage, c, job_id=spec.job_id, source="training"
        ),
    )
    if not result.stopped:
        store.transition(spec.job_id, SUCCEEDED)
    elif cancelled:
        store.transition(spec.job_id, CANCELLED)
    else:
        store.transition(spec.job_id, QUEUED)
