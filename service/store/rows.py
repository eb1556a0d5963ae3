"""Rows to typed records, and the shared pieces of the store's queries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..domain import LOSS_FIELDS, QUALITY_FIELDS, CheckpointRecord, JobRecord, JobState, SweepRecord
from ..domain.records import known_metrics
from .tables import checkpoints, jobs, sweeps

log = logging.getLogger("curvegan.store")

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int


class LeaseLost(Exception):
    """The job is no longer running under this worker's claim: it must stop writing."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id  # the job (or, for a sweep's key, the sweep) made under it


class QueueFull(Exception):
    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs queued")
        self.queued = queued


# The job's latest checkpoint as a column of the same query: listing N jobs is one query.
_latest = (
    sa.select(checkpoints.c.id)
    .where(checkpoints.c.job_id == jobs.c.id)
    .order_by(checkpoints.c.step.desc(), checkpoints.c.seq.desc())
    .limit(1)
    .correlate(jobs)
    .scalar_subquery()
    .label("latest_checkpoint")
)
JOB_COLUMNS: Sequence[Any] = (
    *(jobs.c[name] for name in JobRecord.__dataclass_fields__ if name != "latest_checkpoint"),
    _latest,
)
JOB_SELECT = sa.select(*JOB_COLUMNS)


def _known_figures(kind: str, values: dict[str, Any]) -> None:
    """Metrics and quality as the known names' finite floats, or None: a row an older version
    wrote or a hand edit left is still read, rather than failing every listing it is in."""
    for name, fields in (("metrics", LOSS_FIELDS), ("quality", QUALITY_FIELDS)):
        stored = values[name]
        values[name] = known_metrics(stored, fields)
        if stored is not None and values[name] is None:
            log.warning(
                "%s %s: stored %s are not %s; shown as null",
                kind,
                values["id"],
                name,
                ", ".join(fields),
            )


def job_record(row: Any) -> JobRecord:
    values = dict(row._mapping)
    values["state"] = JobState(values["state"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    _known_figures("job", values)
    return JobRecord(**values)


def checkpoint_record(row: Any) -> CheckpointRecord:
    values = dict(row._mapping)
    _known_figures("checkpoint", values)
    return CheckpointRecord(**values)


SWEEP_SELECT = sa.select(*(sweeps.c[name] for name in SweepRecord.__dataclass_fields__))


def sweep_record(row: Any) -> SweepRecord:
    return SweepRecord(**dict(row._mapping))


class Engines:
    """A read and a write engine (the same one outside SQLite)."""

    _read: Engine
    _write: Engine

    @property
    def is_postgres(self) -> bool:
        return self._write.dialect.name == "postgresql"
