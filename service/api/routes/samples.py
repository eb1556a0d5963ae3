"""The responses of the sampling routes: JSON, or .npy when the client asks for it, and
figures (PNG or SVG) of a few curves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Query, Request, Response

from gan_engine.config import MAX_SEED

from ...core.figures import MEDIA_TYPES, FigureText, Format, render
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
# Pixels each way: below 160 the legend covers the plot; at 2000 x 2000 (4 MP) a PNG of
# 64 curves takes ~0.2 s to draw, one core's worth that a larger bound would multiply.
MIN_FIGURE_PX, MAX_FIGURE_PX = 160, 2000


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


def figure_response(
    svc: Services,
    checkpoint_id: str,
    fmt: Format,
    query: FigureQuery,
    title: str,
    metrics: dict[str, float] | None,
) -> Response:
    """``n`` curves of a checkpoint drawn over the artist's bounds; run in a worker thread."""
    # Straight from the sampler: n is the route's bound (64), not CURVEGAN_MAX_SAMPLES's.
    samples = svc.checkpoints.sampler(checkpoint_id).sample(query.n, seed=query.seed)
    metrics = metrics or {}
    text = FigureText(title, metrics.get("d_accuracy"), metrics.get("d_score"))
    image = render(samples.x, samples.curves, text, fmt, query.width, query.height)
    headers = {"X-Curvegan-Checkpoint": checkpoint_id}
    if samples.seed is not None:
        headers["X-Curvegan-Seed"] = str(samples.seed)
    return Response(image, media_type=MEDIA_TYPES[fmt], headers=headers)
