"""/v1/jobs: training jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ...domain import Conflict
from ..deps import Services, Svc
from ..limits import OffloadedJsonRoute
from ..schemas.checkpoints import Checkpoint
from ..schemas.common import ERRORS, MAX_OFFSET, NO_NUL, Error, IdempotencyKey, LastEventId
from ..schemas.jobs import Job, JobCreate, JobList, JobStateName, MetricList
from ..schemas.samples import SampleRequest
from ..streams import event_stream, render
from .samples import (
    FIGURE_RESPONSES,
    FigureQuery,
    figure_response,
    sample_response,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=OffloadedJsonRoute)


@router.post("", status_code=202, response_model=Job, responses={**ERRORS, 429: {"model": Error}})
def create_job(
    body: JobCreate,
    response: Response,
    svc: Svc,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Queues a training job; a worker takes it, oldest first, when one is free."""
    job, _ = svc.jobs.create(body.command(idempotency_key))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return Job.of(job)


@router.get("", response_model=JobList)
def list_jobs(
    svc: Svc,
    state: JobStateName | None = None,
    sweep_id: Annotated[
        str | None, Query(pattern=NO_NUL, description="only this sweep's members")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobList:
    """Jobs, newest first."""
    page = svc.jobs.page(state, limit, offset, sweep_id=sweep_id)
    return JobList(items=[Job.of(j) for j in page.items], total=page.total)


def _json(body: BaseModel) -> Response:
    """The body serialized once, by pydantic-core: what FastAPI would send for the route's
    response_model, without validating the model it was just built as a second time."""
    return Response(body.model_dump_json(), media_type="application/json")


T = TypeVar("T")
# The two routes clients poll are async. On SQLite their reads run on the event loop itself:
# measured with wrk at 50 connections while two jobs trained, a status read in a thread of
# its own served ~1 230 req/s with p99 ~170 ms (every hop contends for the GIL with the
# loop), on the loop ~2 200 req/s with p99 ~30 ms. A database over the network (PostgreSQL)
# must not stall the loop for a round trip: its reads go to threads of their own (not
# anyio's threadpool, where they would queue behind slow sync routes).
_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="curvegan-reads")
# A metrics read this long or shorter is a short read (a few ms at most); a catch-up of up to
# 100 000 rows always goes to a thread.
INLINE_METRICS = 1_000


async def _read(svc: Services, fn: Callable[[], T], short: bool = True) -> T:
    if short and svc.jobs.reads_inline:
        return fn()
    return await asyncio.get_running_loop().run_in_executor(_READS, fn)


@router.get("/{job_id}", response_model=Job, responses=ERRORS)
async def get_job(job_id: str, svc: Svc) -> Response:
    return _json(Job.of(await _read(svc, lambda: svc.jobs.get(job_id))))


@router.get("/{job_id}/metrics", response_model=MetricList, responses=ERRORS)
async def job_metrics(
    job_id: str,
    svc: Svc,
    since_step: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """Every logged step after ``since_step``, ascending."""

    rows = await _read(
        svc, lambda: svc.jobs.metrics(job_id, since_step, limit), limit <= INLINE_METRICS
    )
    return _json(MetricList.model_validate({"items": rows}))


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    response_class=StreamingResponse,
)
def job_event_stream(
    job_id: str,
    svc: Svc,
    since_step: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Server-sent events: `metrics` per logged step (its row, plus `curves`: a few curves
    from the job's fixed evaluation batch, the same latent points at every step), `state` per
    state change; ends after a final state. Reconnecting with Last-Event-ID resumes after that step."""
    svc.jobs.get(job_id)
    if last_event_id:
        since_step = max(since_step, int(last_event_id))
    return event_stream(svc.events.slots, svc.events.job_events(job_id, since_step, render))


@router.post("/{job_id}/cancel", status_code=202, response_model=Job, responses=ERRORS)
def cancel_job(job_id: str, svc: Svc) -> Job:
    """Stops the job at its next step; it saves a final checkpoint and ends `cancelled`."""
    return Job.of(svc.jobs.cancel(job_id))


@router.delete("/{job_id}", status_code=204, responses=ERRORS)
def delete_job(job_id: str, svc: Svc) -> Response:
    """Deletes a finished job and its metric history; its checkpoints stay."""
    svc.jobs.delete(job_id)
    return Response(status_code=204)


@router.post("/{job_id}/checkpoints", status_code=201, response_model=Checkpoint, responses=ERRORS)
async def checkpoint_job(job_id: str, svc: Svc) -> Checkpoint:
    """Saves a checkpoint of a running job at its next step."""
    return Checkpoint.of(await svc.jobs.checkpoint_now(job_id))


@router.post("/{job_id}/samples", responses=ERRORS)
def sample_job(job_id: str, body: SampleRequest, request: Request, svc: Svc) -> Response:
    """Curves from the job's latest checkpoint (409 before it has one)."""
    job = svc.jobs.get(job_id)
    if job.latest_checkpoint is None:
        raise Conflict(f"job {job_id} ({job.state}) has no checkpoint yet")
    return sample_response(svc, job.latest_checkpoint, body, request)


@router.get(
    "/{job_id}/figure.{fmt}",
    response_class=Response,
    responses={**ERRORS, **FIGURE_RESPONSES},
)
async def job_figure(
    job_id: str,
    fmt: Literal["png", "svg"],
    svc: Svc,
    query: Annotated[FigureQuery, Depends()],
) -> Response:
    """The tutorial's figure from the job's latest checkpoint (409 before it has one), with
    the job's latest D accuracy and D score written on it, as PNG or SVG."""
    job = await run_in_threadpool(svc.jobs.get, job_id)
    if job.latest_checkpoint is None:
        raise Conflict(f"job {job_id} ({job.state}) has no checkpoint yet to draw")
    title = f"job {job.id} ({job.state}), step {job.step}"
    return await figure_response(svc, job.latest_checkpoint, fmt, query, title, job.metrics)
