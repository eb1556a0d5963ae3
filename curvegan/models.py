"""Typed results. Field names follow the v1 API; unknown fields from newer servers are kept."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# The client's one list of states (it imports nothing of the server), in the server's order.
STATES: tuple[str, ...] = get_args(JobState)
FINAL_STATES = frozenset(STATES[2:])


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
    sweep_id: str | None = None  # the sweep this job is a member of
    member_index: int | None = None  # its place in that sweep, from 0

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
    """One server-sent event. A job's stream: ``type`` "metrics" (data: a metrics row with
    state/progress) or "state" (data: the Job). A sweep's: "sweep" (data: the Sweep, read it
    with ``Sweep.model_validate(event.data)``) or "deleted" (the sweep went away)."""

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


# ---------------------------------------------------------------- sweeps
# How ``best_by`` ranks members, as the server does (docs/service-contract-notes.md): a
# quality metric by its better end, a loss metric by its distance to D's equilibrium value.
# Kept here so a leaderboard can be ordered without importing the server (no torch).
_LOWER, _HIGHER = "lower", "higher"
BEST_BY: dict[str, str | float] = {
    "w1_a": _LOWER,
    "resid": _LOWER,
    "in_band": _HIGHER,
    "d_score": -2 * math.log(2),
    "d_loss": 2 * math.log(2),
    "d_accuracy": 0.5,
}


class SweepCounts(_Model):
    """Members in each state."""

    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled


class SweepMember(_Model):
    """One member job of a sweep: the fields it sets over the base, and its latest state."""

    job_id: str
    member_index: int
    values: dict[str, Any]
    state: JobState
    step: int
    steps: int
    progress: float
    metrics: LossMetrics | None = None
    quality: Quality | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def metric(self, name: str) -> float | None:
        """The member's latest value of a metric (quality or loss), None before it logged."""
        for group in (self.quality, self.metrics):
            value = getattr(group, name, None) if group is not None else None
            if isinstance(value, (int, float)):
                return float(value)
        return None


class SweepBest(_Model):
    job_id: str
    member_index: int
    value: float  # the member's latest value of the sweep's best_by


class SweepSummary(_Model):
    """A sweep as listed (``list_sweeps``): everything but the members."""

    id: str
    name: str | None = None
    state: JobState  # derived from the members by the server
    created_at: datetime
    best_by: str
    preset: str
    config: dict[str, Any]  # the base config, as given
    vary: dict[str, list[Any]] | None = None  # the grid, when one was given
    member_count: int
    counts: SweepCounts
    progress: float

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class Sweep(SweepSummary):
    """A sweep with its members (``get_sweep``, ``create_sweep``, ``wait_sweep``)."""

    members: list[SweepMember]
    best: SweepBest | None = None  # None until a member logged best_by

    def ranked(self) -> list[SweepMember]:
        """The members best first by ``best_by`` (the server's order: its ``best`` comes
        first), then those without a value yet; ties by member index."""

        def key(m: SweepMember) -> tuple[int, float, int]:
            rule = BEST_BY.get(self.best_by)
            value = m.metric(self.best_by)
            if value is None or rule is None or math.isnan(value):
                return (1, 0.0, m.member_index)
            if rule == _LOWER:
                badness = value
            elif rule == _HIGHER:
                badness = -value
            else:
                badness = abs(value - float(rule))
            return (0, badness, m.member_index)

        return sorted(self.members, key=key)


class SweepList(_Model):
    items: list[SweepSummary]
    total: int
