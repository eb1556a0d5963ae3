"""curvegan client: drive a curvegan server from Python (no torch needed).

    from curvegan import Client
    with Client("http://127.0.0.1:8000") as api:
        job = api.wait(api.create_job({"steps": 3000}).id)
        curves = api.sample(job.latest_checkpoint, n=10, seed=0).curves
        sweep = api.wait_sweep(api.create_sweep({"steps": 3000}, vary={"seed": [0, 1, 2]}).id)
        best = sweep.ranked()[0]  # the best member by sweep.best_by (w1_a by default)

See ``curvegan.errors`` for the exception tree.
"""

from ._retry import RetryPolicy
from .aio import AsyncClient
from .client import Client
from .errors import (
    ApiError,
    AuthError,
    ConflictError,
    CurveganError,
    JobFailedError,
    NonFiniteOutputError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    UnavailableError,
    UsageError,
    ValidationError,
)
from .models import (
    Checkpoint,
    CheckpointList,
    Event,
    Job,
    JobList,
    MetricRow,
    Samples,
    Sweep,
    SweepBest,
    SweepCounts,
    SweepList,
    SweepMember,
    SweepSummary,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthError",
    "Checkpoint",
    "CheckpointList",
    "Client",
    "ConflictError",
    "CurveganError",
    "Event",
    "Job",
    "JobFailedError",
    "JobList",
    "MetricRow",
    "NonFiniteOutputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "Samples",
    "ServerError",
    "Sweep",
    "SweepBest",
    "SweepCounts",
    "SweepList",
    "SweepMember",
    "SweepSummary",
    "UnavailableError",
    "UsageError",
    "ValidationError",
]
