"""The service's domain, free of I/O: job states and transitions, sweeps, records, errors."""

from .errors import (
    Conflict,
    DomainError,
    Invalid,
    InvalidCheckpoint,
    NonFiniteOutput,
    NotFound,
    PayloadTooLarge,
    TooManyJobs,
    TooManyRequests,
    TooManyStreams,
    Unauthorized,
    UnsupportedMediaType,
)
from .records import (
    LOSS_FIELDS,
    METRIC_FIELDS,
    QUALITY_FIELDS,
    CheckpointRecord,
    JobRecord,
    Lease,
    Requests,
    SweepRecord,
)
from .states import FINAL_STATES, TRANSITIONS, JobState
from .sweeps import BEST_BY, DEFAULT_BEST_BY, SweepStats

__all__ = [
    "BEST_BY",
    "DEFAULT_BEST_BY",
    "FINAL_STATES",
    "LOSS_FIELDS",
    "METRIC_FIELDS",
    "QUALITY_FIELDS",
    "TRANSITIONS",
    "CheckpointRecord",
    "Conflict",
    "DomainError",
    "Invalid",
    "InvalidCheckpoint",
    "JobRecord",
    "JobState",
    "Lease",
    "NonFiniteOutput",
    "NotFound",
    "PayloadTooLarge",
    "Requests",
    "SweepRecord",
    "SweepStats",
    "TooManyJobs",
    "TooManyRequests",
    "TooManyStreams",
    "Unauthorized",
    "UnsupportedMediaType",
]
