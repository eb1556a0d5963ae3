"""Typed records of the store: what a job and a checkpoint are, whoever reads them."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from .states import JobState


def new_id(prefix: str) -> str:
    """A record's id: its kind and 80 random bits, e.g. ``job_3f1c...``."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


LOSS_FIELDS = ("d_loss", "g_loss", "d_accuracy", "d_score")
QUALITY_FIELDS = ("in_band", "resid", "w1_a")
METRIC_FIELDS = LOSS_FIELDS + QUALITY_FIELDS


def known_metrics(value: Any, names: tuple[str, ...]) -> dict[str, float] | None:
    """``value`` as exactly ``names`` mapped to finite floats, or None when it is anything
    else: rows written by an older version or edited by hand are still read and listed, with
    figures that cannot be trusted shown as absent rather than failing every listing."""
    if not isinstance(value, dict) or set(value) != set(names):
        return None
    out: dict[str, float] = {}
    for name in names:
        v = value[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            out[name] = float(v)
        except OverflowError:
            return None
        if not math.isfinite(out[name]):
            return None
    return out


@dataclass(frozen=True)
class JobRecord:
    id: str
    seq: int
    name: str | None
    state: JobState
    config: dict[str, Any]
    steps: int
    step: int
    metrics: dict[str, float] | None
    quality: dict[str, float] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    resumed_from: str | None
    latest_checkpoint: str | None
    cancel_requested: bool
    # The current (or last) holder of the job's lease: a worker id, and the claim's number,
    # which fences off every write of an earlier holder.
    worker_id: str | None
    attempt: int
    # Set for the members of a sweep (last, with defaults: records made before sweeps existed,
    # and their constructors, stay valid).
    sweep_id: str | None = None
    member_index: int | None = None

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.steps) if self.steps else 0.0


@dataclass(frozen=True)
class SweepRecord:
    """A base recipe and its variations; its members are ordinary jobs, and its state is
    derived from theirs (see domain.sweeps), never stored."""

    id: str
    seq: int
    name: str | None
    # The request as given: {"preset", "config" (the base fields), and "vary" or "members"}.
    config: dict[str, Any]
    best_by: str
    created_at: float


@dataclass(frozen=True)
class CheckpointRecord:
    id: str
    seq: int
    job_id: str | None
    step: int
    config: dict[str, Any]
    metrics: dict[str, float] | None
    quality: dict[str, float] | None
    created_at: float
    size_bytes: int
    sha256: str
    source: str


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a running job. Every write made under it checks that the job is
    still running under this very claim (fencing), so a worker that lost it writes nothing."""

    job_id: str
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class Requests:
    """What the API asked of a running job, read by its worker on each renewal."""

    cancel: bool
    suspend: bool
    save: int  # a counter: the worker saves when it grows
