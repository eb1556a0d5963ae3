"""curvegan client: drive a curvegan server from Python (no torch needed).

    from curvegan import Client
    with Client("http://127.0.0.1:8000") as api:
        job = api.wait(api.create_job({"steps": 3000}).id)
        curves = api.sample(job.latest_checkpoint, n=10, seed=0).curves

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
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    UnavailableError,
    UsageError,
    ValidationError,
)
from .models import Checkpoint, CheckpointList, Event, Job, JobList, MetricRow, Samples

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
    "NotFoundError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "Samples",
    "ServerError",
    "UnavailableError",
    "UsageError",
    "ValidationError",
]
