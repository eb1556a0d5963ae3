"""The responses of the sampling routes: JSON, or .npy when the client asks for it, and
figures (PNG or SVG) of a few curves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Query, Request, Response
from starlette.concurrency import run_in_threadpool

from gan_engine.config import MAX_SEED

from ...core.figures import MEDIA_TYPES, FigureText, Format
from ..deps import Services
from ..schemas.samples import SampleRequest

NPY = "application/x-npy"


def sample_response(
    svc: Services, checkpoint_id: str, body: SampleRequest, request: Request
) -> Response:
    samples = svc.checkpoints.sample(checkpoint_id, body.command())
    if NPY in request.headers.get("accept", ""):
        return Response(
            svc.checkpoints.to_npy(samples),
            media_type=NPY,
            # The JSON body's checkpoint_id and seed, as headers: the body is the bare array.
            headers={
                "X-Curvegan-Seed": "" if samples.seed is None else str(samples.seed),
                "X-Curvegan-Checkpoint": checkpoint_id,
            },
        )
    # orjson writes the float32 arrays directly: 10-20x faster than lists through pydantic.
    content = orjson.dumps(
        {
            "checkpoint_id": checkpoint_id,
            "x": samples.x,
            "curves": samples.curves,
            "seed": samples.seed,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return Response(content, media_type="application/json")


# A few curves are a figure; past this many the lines hide the bounds.
MAX_FIGURE_CURVES = 64
# Pixels each way: below 160 the legend covers the plot. Width times height is bounded too,
# by CURVEGAN_MAX_FIGURE_PIXELS (4 MP: 2000 x 2000, or a wide 4000 x 1000).
MIN_FIGURE_PX, MAX_FIGURE_PX = 160, 4000


@dataclass(frozen=True)
class FigureQuery:
    """A figure route's query parameters (jobs' and checkpoints' take the same)."""

    n: Annotated[int, Query(ge=1, le=MAX_FIGURE_CURVES, description="curves drawn, 1..64")] = 3
    seed: Annotated[
        int | None,
        Query(ge=0, le=MAX_SEED, description="same seed, same curves; random when unset"),
    ] = None
    width: Annotated[int, Query(ge=MIN_FIGURE_PX, le=MAX_FIGURE_PX, description="pixels")] = 640
    height: Annotated[int, Query(ge=MIN_FIGURE_PX, le=MAX_FIGURE_PX, description="pixels")] = 480


FIGURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}, "image/svg+xml": {}},
        "description": "the figure; the checkpoint and seed drawn as X-Curvegan-* headers",
    }
}


async def figure_response(
    svc: Services,
    checkpoint_id: str,
    fmt: Format,
    query: FigureQuery,
    title: str,
    metrics: dict[str, float] | None,
) -> Response:
    """``n`` curves of a checkpoint drawn over the artist's bounds: sampled in a thread, drawn
    in the figure pool's worker process (core/figure_pool.py), the event loop free meanwhile."""
    svc.figures.check_size(query.width, query.height)
    with svc.figures.slot():
        # n is the route's bound (64), not CURVEGAN_MAX_SAMPLES's; curves that are not finite
        # are refused (422 non_finite_output) before anything is drawn.
        samples = await run_in_threadpool(
            svc.checkpoints.figure_samples, checkpoint_id, query.n, query.seed
        )
        metrics = metrics or {}
        text = FigureText(title, metrics.get("d_accuracy"), metrics.get("d_score"))
        image = await svc.figures.render(
            samples.x, samples.curves, text, fmt, query.width, query.height
        )
    headers = {"X-Curvegan-Checkpoint": checkpoint_id}
    if samples.seed is not None:
        headers["X-Curvegan-Seed"] = str(samples.seed)
    return Response(image, media_type=MEDIA_TYPES[fmt], headers=headers)
