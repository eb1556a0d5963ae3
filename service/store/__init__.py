"""The store: jobs, metrics, checkpoints and leases in SQL; the source of truth for every
API server and worker."""

from .rows import IdempotencyConflict, LeaseLost, Page, QueueFull
from .store import CheckpointInUse, MissingCheckpoint, Store

__all__ = [
    "CheckpointInUse",
    "IdempotencyConflict",
    "LeaseLost",
    "MissingCheckpoint",
    "Page",
    "QueueFull",
    "Store",
]
