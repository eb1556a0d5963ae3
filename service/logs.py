"""The service's log: its ``curvegan.*`` loggers on stderr beside uvicorn's lines, and one line
per job when it starts, when it goes back to the queue (suspended, or its worker lost) and
when it ends (succeeds, fails, is cancelled, queued or running), with its figures.

The job lines come from the store's lease transitions (claim, finish), the one place every
runner goes through: in local mode that is a pool process, whose stderr is the server's.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("curvegan.jobs")

_FIGURES = ("d_accuracy", "d_score", "w1_a", "in_band")


def configure(level: str) -> None:
    """Sends ``curvegan.*`` records at ``level`` and above to stderr. Without a handler Python
    prints only warnings, bare, and a job's start and end would go unseen."""
    logger = logging.getLogger("curvegan")
    logger.setLevel(level.upper())
    if any(getattr(h, "_curvegan", False) for h in logger.handlers):
        return  # configured already (the server, then its pool process, share a module)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._curvegan = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    # a host that logs through the root logger (celery) would print each line twice
    logger.propagate = False


def figures(step: int, metrics: dict[str, Any] | None, quality: dict[str, Any] | None) -> str:
    """``step 3000, d_accuracy 0.512, d_score -1.383, w1_a 0.0451, in_band 0.91``: the ones known."""
    known = {**(metrics or {}), **(quality or {})}
    parts = [f"step {step}"]
    parts += [f"{name} {known[name]:.4g}" for name in _FIGURES if known.get(name) is not None]
    return ", ".join(parts)


def job_started(job_id: str, worker_id: str, attempt: int, step: int) -> None:
    resumed = f", resuming at step {step}" if step else ""
    log.info("job %s started on %s (attempt %d%s)", job_id, worker_id, attempt, resumed)


def job_ended(job_id: str, state: str, summary: str, error: str | None) -> None:
    if error is not None:
        log.warning("job %s %s at %s: %s", job_id, state, summary, error)
    else:
        log.info("job %s %s at %s", job_id, state, summary)


def job_requeued(job_id: str, why: str) -> None:
    log.info("job %s back in the queue: %s", job_id, why)


def job_cancelled_while_queued(job_id: str) -> None:
    log.info("job %s cancelled while queued", job_id)
