"""What jobs and sweeps share when they are created: the store's refusals as domain errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..domain import Conflict, TooManyJobs
from ..store import IdempotencyConflict, QueueFull


@contextmanager
def creating(kind: str, key: str | None, full: Callable[[int], str]) -> Iterator[None]:
    """Turns a full queue into TooManyJobs (``full(queued)`` says it, with "retry later"
    added) and a key used for another request into Conflict naming the ``kind`` it made."""
    try:
        yield
    except QueueFull as exc:
        raise TooManyJobs(f"{full(exc.queued)}; retry later") from None
    except IdempotencyConflict as exc:
        raise Conflict(
            f"Idempotency-Key {key!r} was used for another request ({kind} {exc.job_id})",
            field="Idempotency-Key",
        ) from None
