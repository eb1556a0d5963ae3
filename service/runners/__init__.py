"""Runners: who trains the queued jobs. ``local`` is a warm process pool inside the server;
``celery`` sends them to worker nodes. Both claim jobs from the store under leases."""

from __future__ import annotations

from ..settings import Settings
from ..store import Store
from .base import Runner


def make_runner(store: Store, settings: Settings) -> Runner:
    if settings.executor == "celery":
        from .celery import CeleryRunner  # Celery is imported only where it is used

        return CeleryRunner(store, settings)
    from .local import LocalRunner

    return LocalRunner(store, settings)


__all__ = ["Runner", "make_runner"]
