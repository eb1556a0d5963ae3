"""Typed results. Field names follow the v1 API; unknown fields from newer servers are kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class LossMetrics(_Model):
    d_loss: float
    g_loss: float
    d_accuracy: float
    d_score: float


class Quality(_Model):
    in_band: float
    resid: float
    w1_a: float


class Job(_Model):
    id: str
    name: str | None = None
    state: JobState
    config: dict[str, Any]
    step: int
    steps: int
    progress: float
    metrics: LossMetrics | None = None
    quality: Quality | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    latest_checkpoint: str | None = None
    resumed_from: str | None = None
    worker: str | None = None  # which worker holds (or last held) the job

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class JobList(_Model):
    items: list[Job]
    total: int


class MetricRow(_Model):
    step: int
    d_loss: float
    g_loss: float
    d_accuracy: float
    d_score: float
    in_band: float
    resid: float
    w1_a: float


class Checkpoint(_Model):
    id: str
    job_id: str | None = None
    step: int
    config: dict[str, Any]
    metrics: LossMetrics | None = None
    quality: Quality | None = None
    created_at: datetime
    size_bytes: int
    sha256: str
    source: Literal["training", "upload"]


class CheckpointList(_Model):
    items: list[Checkpoint]
    total: int


class Event(_Model):
    """One server-sent event: ``type`` is "metrics" or "state" (data: a metrics row with
    state/progress, or the Job)."""

    type: str
    data: dict[str, Any]
    id: str | None = None


class Samples(_Model):
    """Curves drawn from a checkpoint. ``curves`` is a numpy (n, 15) float32 array when numpy
    is installed, else a list of lists."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    checkpoint_id: str | None
    x: list[float]
    curves: Any
    seed: int | None
