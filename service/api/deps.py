"""Request-scoped access to the app's services, and the API-key check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..core.checkpoints import CheckpointService
from ..core.events import EventHub
from ..core.figure_pool import FigurePool
from ..core.health import Health
from ..core.jobs import JobService
from ..core.sweeps import SweepService
from ..settings import Settings
from .limits import key_matches, unauthorized
from .telemetry import Telemetry


@dataclass
class Services:
    settings: Settings
    jobs: JobService
    sweeps: SweepService
    checkpoints: CheckpointService
    events: EventHub
    figures: FigurePool
    health: Health
    telemetry: Telemetry


# Both dependencies are async: FastAPI runs a sync one in its threadpool, a thread hop on
# every request for what is a dict lookup and a header comparison.
async def services(request: Request) -> Services:
    return request.app.state.services


# The one alias every route takes its services by.
Svc = Annotated[Services, Depends(services)]


async def require_api_key(request: Request) -> None:
    """The key again, for a route mounted outside RequestGate's /v1 (intake.py checks every
    /v1 request before its body is read; this dependency runs only after)."""
    key = request.app.state.services.settings.api_key
    if key and not key_matches(request.headers.get("authorization"), key):
        raise unauthorized()
