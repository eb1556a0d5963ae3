"""Request-scoped access to the app's services, and the API-key check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request

from .catalog import CheckpointService
from .domain import Unauthorized
from .events import EventHub
from .jobs import JobService
from .runners import Runner
from .settings import Settings
from .storage import CheckpointStorage
from .store import Store
from .sweeps import SweepService
from .telemetry import Telemetry


@dataclass
class Services:
    settings: Settings
    store: Store
    storage: CheckpointStorage
    runner: Runner
    jobs: JobService
    sweeps: SweepService
    checkpoints: CheckpointService
    events: EventHub
    telemetry: Telemetry


def services(request: Request) -> Services:
    return request.app.state.services


def require_api_key(request: Request) -> None:
    key = request.app.state.services.settings.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), key.encode()):
        raise Unauthorized("missing or wrong API key: send 'Authorization: Bearer <key>'")
