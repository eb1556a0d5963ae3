"""Settings from CURVEGAN_* environment variables; the defaults need no other server."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CURVEGAN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65_535)
    # SQLite database and checkpoint files live here unless database_url says otherwise.
    data_dir: Path = Path("checkpoints")
    # SQLAlchemy URL; empty means sqlite:///<data_dir>/curvegan.db.
    database_url: str = ""
    api_key: str | None = None
    max_upload_bytes: int = Field(16 * 1024 * 1024, ge=1)
    max_samples: int = Field(100_000, ge=1)
    # One worker process per running job; more than the CPU count only time-slices.
    max_concurrent_jobs: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_queued_jobs: int = Field(100, ge=0)
    # Samplers (a loaded generator each, ~10 KB) kept in memory, least recently used dropped.
    sampler_cache: int = Field(8, ge=1)
    # Workers run at a lower CPU priority so the API answers promptly while jobs train.
    worker_nice: int = Field(5, ge=0, le=19)
    log_level: str = "info"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'curvegan.db'}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"
