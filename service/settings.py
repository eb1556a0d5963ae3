"""Settings from CURVEGAN_* environment variables; the defaults need no other server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CURVEGAN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65_535)
    # SQLite database and checkpoint files live here unless database_url says otherwise.
    data_dir: Path = Path("checkpoints")
    # SQLAlchemy URL; empty means sqlite:///<data_dir>/curvegan.db.
    database_url: str = ""
    api_key: str | None = None
    max_upload_bytes: int = Field(16 * 1024 * 1024, ge=1)
    # Every other request body (JSON), refused with 413 before it is parsed. The largest
    # legitimate one is a sample request's `z`: 100 000 rows (CURVEGAN_MAX_SAMPLES) of 5
    # latents (n_ideas of every preset) is 10.5 MB as json.dumps writes random normals and at
    # most 13.4 MB with every number a 24-character float64 repr; 16 MiB admits both.
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1)
    # Seconds a request's body may take to arrive, from the request's start; 408 after. A
    # 16 MiB upload over a 4 Mbit/s link takes 34 s; 60 s leaves room, and a client sending
    # a byte now and then holds its connection for a minute, not for ever.
    body_timeout_seconds: float = Field(60.0, gt=0, le=3600.0)
    # Origins whose pages may write (POST, DELETE) besides this server's own, comma-separated
    # ("https://curves.example.com"): for a proxy that rewrites Host, where a browser without
    # Sec-Fetch-Site sends an Origin that no longer matches it.
    allowed_origins: str = ""
    max_samples: int = Field(100_000, ge=1)
    # One worker process per running job; more than the CPU count only time-slices.
    max_concurrent_jobs: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # Room for a few of the largest sweeps at once: a sweep queues all its members together.
    max_queued_jobs: int = Field(1000, ge=0)
    # Members of one sweep (POST /v1/sweeps); a larger grid or list is refused before any
    # member is expanded.
    max_sweep_members: int = Field(256, ge=1, le=100_000)
    # Samplers (a loaded generator each, ~10 KB) kept in memory, least recently used dropped.
    sampler_cache: int = Field(8, ge=1)
    # Event streams (jobs' and sweeps') open on this server at once; 429 beyond. Each holds a
    # connection (a file descriptor, of a soft limit often 1024) for as long as its job runs
    # and formats its own frames: 200 subscribers of one training job cost it 9-14% of its
    # steps/s on 2 cores (benchmarks/load.py); 500 leaves descriptors and CPU for ordinary
    # requests, the store and checkpoint files.
    max_event_streams: int = Field(500, ge=1, le=100_000)
    # Figures are drawn in worker processes (core/figure_pool.py), off the event loop and out
    # of the server's heap: one draws a 2000 x 2000 PNG in ~0.2 s, and more only share the
    # same cores with training. Beyond the workers, this many more wait; the next is a 429.
    figure_workers: int = Field(1, ge=1, le=64)
    figure_queue: int = Field(8, ge=0, le=1000)
    # Pixels of one figure (width x height): 2000 x 2000 draws in ~0.2 s and its canvas
    # takes 16 MB in the worker; a larger cap multiplies both.
    max_figure_pixels: int = Field(4_000_000, ge=160 * 160, le=100_000_000)
    # Workers run at a lower CPU priority so the API answers promptly while jobs train.
    worker_nice: int = Field(5, ge=0, le=19)
    log_level: str = "info"

    # Who runs jobs: "local" is a pool of warm worker processes owned by this server;
    # "celery" publishes each job to a broker for `curvegan worker` nodes on any machine.
    executor: Literal["local", "celery"] = "local"
    # amqp://guest:guest@host:5672// (RabbitMQ, recommended) or redis://host:6379/0.
    broker_url: str = ""
    # The broker queue the API publishes to and the workers consume (one per deployment).
    queue: str = Field("curvegan", min_length=1, max_length=200)
    # Checkpoint files: empty means <data_dir>/files; any fsspec URL (s3://bucket/prefix,
    # file:///mnt/shared/curvegan) lets API servers and workers on several machines share them.
    storage_url: str = ""
    # A worker holds a running job's lease this long and renews it every third of it; a job
    # whose lease lapses (dead, hung or cut-off worker) goes back to the queue.
    lease_seconds: float = Field(15.0, ge=1.0, le=3600.0)
    # A job whose worker was lost this many times fails instead of being retried again.
    max_worker_losses: int = Field(3, ge=1, le=100)
    # Cluster mode: a queued job unclaimed this long while the broker queue is empty had its
    # message lost, and is published again.
    republish_seconds: float = Field(30.0, ge=0.1, le=86_400.0)
    # The most sweep members one worker process trains together as a population. 16 was
    # the fastest size per member on a 2-core CPU (benchmarks/sweep.py: K=16 ~9 900
    # GAN-steps/s a core, K=32 ~9 200, K=64 ~7 200: larger stacks fall out of cache).
    # On a GPU raise it: one population fills the device only with thousands of members.
    max_population: int = Field(16, ge=1, le=16_384)
    # Where workers train their populations: "cpu", or a CUDA device ("cuda", "cuda:1").
    # Checked where the workers start (this server's pool, or `curvegan worker`), so an API
    # server without a GPU may queue for GPU worker nodes. Checkpoints are written as CPU
    # tensors and sampling stays on the CPU, so files do not depend on the device.
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]{1,3})?)$")
    # How many worker processes a sweep is split between (each takes its share of the queued
    # members as one population); 0 means this server's pool, or one Celery node's processes.
    # In a cluster, set it to the worker processes of all nodes to spread a sweep over them.
    sweep_split: int = Field(0, ge=0, le=16_384)
    # Worker processes of `curvegan worker` (Celery prefork); 0 means the CPU count.
    worker_concurrency: int = Field(0, ge=0, le=1024)
    # A temporary file, or a checkpoint file with no record, this much older than its last
    # write is the leftover of a writer killed mid-write and is removed (janitor.py). A live
    # write and its record take well under a second; an hour leaves room for a store that
    # was slow or down meanwhile, on this server or any other sharing the files.
    stale_file_seconds: float = Field(3600.0, ge=0.1, le=30 * 86_400.0)
    # Checkpoints a job keeps as it saves more: its newest this many, its best (by its
    # sweep's best_by, else w1_a, as its checkpoints recorded them) and any an unfinished job
    # resumes from. checkpoint_every=1 would otherwise write a file a step with no end; 5
    # leaves a few to go back to and costs ~5 x 60 KB for the default network.
    keep_checkpoints: int = Field(5, ge=1, le=100_000)
    # Metric rows a job keeps: past it, its older history is thinned (every 2nd step, then
    # every 4th...) so the whole run stays represented, its first and newest rows kept, and
    # only the newest 64 rows keep their preview curves (store/bounds.py). A row is ~100 bytes
    # without them: 10 000 rows are ~1 MB and ~2 MB more of curves at n_points=1024.
    max_metric_rows: int = Field(10_000, ge=10, le=10_000_000)
    # Bytes of checkpoint files and SQLite database the server may keep; a checkpoint that
    # would take it past is refused (an upload with 507, a training save as on a full disk).
    # 0, the default, is no cap but the disk's own: jobs' growth is bounded by the two
    # settings above, and only the operator knows what else shares the disk.
    max_data_bytes: int = Field(0, ge=0)
    # A finished job whose final checkpoint finds the disk full keeps its weights in memory
    # and retries (1 s, doubling to 60 s), its lease renewed, instead of training again; it
    # fails after this long. 30 minutes gives whoever the 507s alerted time to free space.
    final_save_timeout_seconds: float = Field(1800.0, gt=0, le=7 * 86_400.0)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'curvegan.db'}"

    @property
    def allowed_origin_set(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"
