"""Health, readiness and Prometheus metrics: open even when an API key is set."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from ..deps import Services, services

router = APIRouter(tags=["operations"])
Svc = Annotated[Services, Depends(services)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: Svc) -> JSONResponse:
    """The store answers and the job dispatcher runs."""
    checks = {"store": False, "workers": svc.runner.ready}
    try:
        checks["store"] = svc.store.ping()
    except Exception:
        checks["store"] = False
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", response_class=Response)
async def metrics(svc: Svc) -> Response:
    """Prometheus text format."""
    return Response(await run_in_threadpool(svc.telemetry.render), media_type=CONTENT_TYPE_LATEST)
