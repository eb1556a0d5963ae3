"""/v1/checkpoints: saved and uploaded checkpoints, their files, and sampling."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..deps import Svc
from ..limits import OffloadedJsonRoute
from ..schemas.checkpoints import Checkpoint, CheckpointList
from ..schemas.common import ERRORS, MAX_OFFSET, NO_NUL, Error
from ..schemas.samples import SampleRequest, SampleResponse
from .samples import (
    FIGURE_RESPONSES,
    NPY,
    FigureQuery,
    figure_response,
    sample_response,
)

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"], route_class=OffloadedJsonRoute)


@router.get("", response_model=CheckpointList)
def list_checkpoints(
    svc: Svc,
    job_id: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CheckpointList:
    """Checkpoints, newest first; `job_id` keeps one job's."""
    page = svc.checkpoints.page(job_id, limit, offset)
    return CheckpointList(items=[Checkpoint.of(r) for r in page.items], total=page.total)


@router.post(
    "",
    status_code=201,
    response_model=Checkpoint,
    responses={413: {"model": Error}, 422: {"model": Error}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_checkpoint(request: Request, svc: Svc) -> Checkpoint:
    """Loads a checkpoint made elsewhere: the safetensors file as the raw request body."""
    # RequestGate bounds this body by CURVEGAN_MAX_UPLOAD_BYTES, declared or streamed.
    body = await request.body()
    row = await run_in_threadpool(svc.checkpoints.upload, body)
    return Checkpoint.of(row)


@router.get("/{checkpoint_id}", response_model=Checkpoint, responses=ERRORS)
def get_checkpoint(checkpoint_id: str, svc: Svc) -> Checkpoint:
    return Checkpoint.of(svc.checkpoints.get(checkpoint_id))


@router.get(
    "/{checkpoint_id}/figure.{fmt}",
    response_class=Response,
    responses={**ERRORS, **FIGURE_RESPONSES},
)
async def checkpoint_figure(
    checkpoint_id: str,
    fmt: Literal["png", "svg"],
    svc: Svc,
    query: Annotated[FigureQuery, Depends()],
) -> Response:
    """The tutorial's figure: ``n`` of the checkpoint's curves between the artist's bounds
    x^2 and 2x^2+1, with D's accuracy and score when saved, as PNG or SVG."""
    ck = await run_in_threadpool(svc.checkpoints.get, checkpoint_id)
    title = f"checkpoint {ck.id}, step {ck.step}"
    return await figure_response(svc, ck.id, fmt, query, title, ck.metrics)


@router.get(
    "/{checkpoint_id}/file",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def checkpoint_file(checkpoint_id: str, svc: Svc) -> Response:
    """The checkpoint's safetensors file."""
    chunks, size = svc.checkpoints.read_file(checkpoint_id)
    # Streamed from the handle opened before the answer starts: the whole file with its true
    # length even if it is deleted meanwhile (a path sent later could be gone or another file).
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{checkpoint_id}.safetensors"',
        },
    )


@router.delete("/{checkpoint_id}", status_code=204, responses=ERRORS)
def delete_checkpoint(checkpoint_id: str, svc: Svc) -> Response:
    svc.checkpoints.delete(checkpoint_id)
    return Response(status_code=204)


@router.post(
    "/{checkpoint_id}/samples",
    response_model=SampleResponse,
    responses={200: {"content": {NPY: {}}}, **ERRORS},
)
def sample_checkpoint(
    checkpoint_id: str, body: SampleRequest, request: Request, svc: Svc
) -> Response:
    """`n` curves (1..CURVEGAN_MAX_SAMPLES) from latents drawn with `seed`, or from `z`.
    With `Accept: application/x-npy` the body is the (n, 15) float32 array as .npy."""
    return sample_response(svc, checkpoint_id, body, request)
