"""Bodies of /v1/checkpoints: a checkpoint's record as the API shows it, and their list."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from ...domain import CheckpointRecord
from .common import LossMetrics, QualityMetrics, iso


class Checkpoint(BaseModel):
    id: str
    job_id: str | None
    step: int
    config: dict[str, Any]
    metrics: LossMetrics | None
    quality: QualityMetrics | None
    created_at: datetime
    size_bytes: int
    sha256: str
    source: Literal["training", "upload"]

    @classmethod
    def of(cls, ck: CheckpointRecord) -> Checkpoint:
        return cls(
            id=ck.id,
            job_id=ck.job_id,
            step=ck.step,
            # A config row that is not an object (edited by hand) must not fail the listing.
            config=ck.config if isinstance(ck.config, dict) else {},
            metrics=ck.metrics,
            quality=ck.quality,
            created_at=iso(ck.created_at),
            size_bytes=ck.size_bytes,
            sha256=ck.sha256,
            source=ck.source,
        )


class CheckpointList(BaseModel):
    items: list[Checkpoint]
    total: int
