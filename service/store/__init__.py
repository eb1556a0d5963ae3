"""The store: jobs, metrics, checkpoints and leases in SQL; the source of truth for every
API server and worker."""

from .rows import IdempotencyConflict, LeaseLost, Page, QueueFull
from .store import Store

__all__ = ["IdempotencyConflict", "LeaseLost", "Page", "QueueFull", "Store"]
