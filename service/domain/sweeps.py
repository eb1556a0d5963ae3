"""Sweeps, free of I/O: how a grid expands into members, a sweep's state and progress derived
from its members' states, and the metrics that pick its best member."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .records import JobRecord
from .states import FINAL_STATES, JobState


@dataclass(frozen=True)
class Criterion:
    """How one metric ranks members: by closeness to a target, or lower/higher is better."""

    source: Literal["metrics", "quality"]  # where the job record keeps the metric
    better: str  # said in the API's error messages and docs
    target: float | None = None
    higher: bool = False

    def badness(self, value: float) -> float:
        """Smaller is better, whatever the metric."""
        if self.target is not None:
            return abs(value - self.target)
        return -value if self.higher else value


# At the equilibrium D outputs 1/2 everywhere: d_loss = 2 ln 2, d_score = -d_loss, and its
# accuracy (mean D(real)) is 1/2. The quality metrics have a right end instead.
BEST_BY: Mapping[str, Criterion] = {
    "w1_a": Criterion("quality", "lower"),
    "resid": Criterion("quality", "lower"),
    "in_band": Criterion("quality", "higher", higher=True),
    "d_score": Criterion("metrics", "closest to -2 ln 2", target=-2 * math.log(2)),
    "d_loss": Criterion("metrics", "closest to 2 ln 2", target=2 * math.log(2)),
    "d_accuracy": Criterion("metrics", "closest to 0.5", target=0.5),
}
DEFAULT_BEST_BY = "w1_a"


def grid_size(vary: Mapping[str, Sequence[Any]]) -> int:
    """Members of the grid, computed without expanding it."""
    return math.prod(len(values) for values in vary.values())


def grid_indices(vary: Mapping[str, Sequence[Any]]) -> list[dict[str, int]]:
    """Each member's index into each field's values: the cartesian product, fields in sorted
    order, values in the given order (the last field varies fastest)."""
    names = sorted(vary)
    ranges = [range(len(vary[name])) for name in names]
    combos = itertools.product(*ranges)
    return [dict(zip(names, c, strict=True)) for c in combos]  # mutation: skip (equal lengths)


def member_values(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fields each member sets over the base config, from a sweep's stored request."""
    vary = spec.get("vary")
    if vary is not None:
        return [{k: vary[k][i] for k, i in idx.items()} for idx in grid_indices(vary)]
    return [dict(member) for member in spec.get("members") or []]


@dataclass(frozen=True)
class SweepStats:
    counts: dict[str, int]  # members in each job state, every state present
    progress: float  # the mean of the members' progress

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    @property
    def state(self) -> JobState:
        """queued while all are; final once all are (failed if any failed, else cancelled if
        any was, else succeeded); running in between."""
        n = self.size
        final = sum(self.counts[s.value] for s in FINAL_STATES)
        if final == n:
            if self.counts[JobState.FAILED.value]:
                return JobState.FAILED
            if self.counts[JobState.CANCELLED.value]:
                return JobState.CANCELLED
            return JobState.SUCCEEDED
        if self.counts[JobState.QUEUED.value] == n:
            return JobState.QUEUED
        return JobState.RUNNING

    @classmethod
    def of(cls, counts: Mapping[str, int], progress_sum: float) -> SweepStats:
        full = dict.fromkeys((s.value for s in JobState), 0)
        full.update(counts)
        n = sum(full.values())
        return cls(full, min(1.0, progress_sum / n) if n else 0.0)

    @classmethod
    def of_members(cls, members: Iterable[JobRecord]) -> SweepStats:
        counts: dict[str, int] = {}
        progress = 0.0
        for job in members:
            counts[job.state.value] = counts.get(job.state.value, 0) + 1
            progress += job.progress
        return cls.of(counts, progress)


def metric_of(job: JobRecord, best_by: str) -> float | None:
    criterion = BEST_BY[best_by]
    values = job.quality if criterion.source == "quality" else job.metrics
    return None if not values or best_by not in values else float(values[best_by])


def best_member(members: Iterable[JobRecord], best_by: str) -> tuple[JobRecord, float] | None:
    """The member whose latest ``best_by`` is best, among those that logged one; ties go to
    the lowest member index."""
    criterion = BEST_BY[best_by]
    scored = [(job, v) for job in members if (v := metric_of(job, best_by)) is not None]
    if not scored:
        return None
    return min(scored, key=lambda jv: (criterion.badness(jv[1]), jv[0].member_index or 0))
