"""/v1/sweeps: a base recipe and its variations, trained as member jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from ..deps import Svc
from ..limits import OffloadedJsonRoute
from ..schemas.common import ERRORS, MAX_OFFSET, Error, IdempotencyKey
from ..schemas.sweeps import Sweep, SweepCreate, SweepList, SweepSummary
from ..streams import event_stream, render

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"], route_class=OffloadedJsonRoute)


@router.post("", status_code=202, response_model=Sweep, responses={**ERRORS, 429: {"model": Error}})
def create_sweep(
    body: SweepCreate,
    response: Response,
    svc: Svc,
    idempotency_key: IdempotencyKey = None,
) -> Sweep:
    """Queues every member of the sweep as a job, all or none; workers take them in order."""
    sweep, members = svc.sweeps.create(body.command(idempotency_key))
    response.headers["Location"] = f"/v1/sweeps/{sweep.id}"
    return Sweep.of_members(sweep, members)


@router.get("", response_model=SweepList)
def list_sweeps(
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> SweepList:
    """Sweeps, newest first, without their member lists (GET /v1/jobs?sweep_id= has them)."""
    page = svc.sweeps.page(limit, offset)
    return SweepList(items=[SweepSummary.of(s, stats) for s, stats in page.items], total=page.total)


@router.get("/{sweep_id}", response_model=Sweep, responses=ERRORS)
def get_sweep(sweep_id: str, svc: Svc) -> Sweep:
    return Sweep.of_members(*svc.sweeps.get(sweep_id))


@router.get(
    "/{sweep_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    response_class=StreamingResponse,
)
def sweep_event_stream(sweep_id: str, svc: Svc) -> StreamingResponse:
    """Server-sent events: a `sweep` frame on connecting, one per change of a member's state
    or step, and a last one once the sweep is final."""
    sweep, _ = svc.sweeps.get(sweep_id)
    return event_stream(svc.events.slots, svc.events.sweep_events(sweep, render))


@router.post("/{sweep_id}/cancel", status_code=202, response_model=Sweep, responses=ERRORS)
def cancel_sweep(sweep_id: str, svc: Svc) -> Sweep:
    """Cancels every member not yet final: queued ones at once, running ones at their next
    step (each saves a final checkpoint)."""
    return Sweep.of_members(*svc.sweeps.cancel(sweep_id))


@router.delete("/{sweep_id}", status_code=204, responses=ERRORS)
def delete_sweep(sweep_id: str, svc: Svc) -> Response:
    """Deletes a finished sweep and its member jobs; their checkpoints stay."""
    svc.sweeps.delete(sweep_id)
    return Response(status_code=204)
