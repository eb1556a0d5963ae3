"""Job states and the only edges between them: no edge leaves a final state."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# to-state -> the states it may be entered from. running -> queued is the way back to the
# queue for a job whose worker stopped without finishing: it was suspended (its server shut
# down) or its lease lapsed (the worker died, hung or was cut off).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.RUNNING: frozenset({JobState.QUEUED}),
    JobState.QUEUED: frozenset({JobState.RUNNING}),
    JobState.SUCCEEDED: frozenset({JobState.RUNNING}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.RUNNING}),
    JobState.CANCELLED: frozenset({JobState.QUEUED, JobState.RUNNING}),
}


class IllegalTransition(RuntimeError):
    """A write would move a job along an edge that TRANSITIONS does not have."""


def check_transition(frm: JobState, to: JobState) -> None:
    """Raises IllegalTransition unless TRANSITIONS has the edge ``frm`` -> ``to`` (read at each
    call: the table is the only place the edges are written down)."""
    if frm not in TRANSITIONS.get(to, frozenset()):
        raise IllegalTransition(f"a job cannot go from {frm.value} to {to.value}")
