"""The service's domain, free of I/O: job states and transitions, typed records, errors."""

from .errors import (
    Conflict,
    DomainError,
    Invalid,
    InvalidCheckpoint,
    NotFound,
    PayloadTooLarge,
    TooManyJobs,
    Unauthorized,
)
from .records import (
    LOSS_FIELDS,
    METRIC_FIELDS,
    QUALITY_FIELDS,
    CheckpointRecord,
    JobRecord,
    Lease,
    Requests,
)
from .states import FINAL_STATES, TRANSITIONS, JobState

__all__ = [
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
    "NotFound",
    "PayloadTooLarge",
    "Requests",
    "TooManyJobs",
    "Unauthorized",
]
