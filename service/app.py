"""The app factory: settings, store, storage, executor and routes, wired in a lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from .catalog import CheckpointService
from .deps import Services, require_api_key
from .errors import install_error_handlers
from .executor import LocalProcessExecutor
from .jobs import JobService
from .routers import checkpoints, jobs, ops
from .settings import Settings
from .storage import LocalStorage
from .store import QUEUED, RUNNING, Store
from .telemetry import Telemetry, TelemetryMiddleware

log = logging.getLogger("curvegan")


def _recover(store: Store) -> list[str]:
    """Jobs left running by a server that died go back to the queue; their worker resumes
    from the latest checkpoint (exact resume makes the result the same as uninterrupted)."""
    recovered = []
    for job_id in store.job_ids_in_state(RUNNING):
        if store.transition(job_id, QUEUED):
            recovered.append(job_id)
    return recovered


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    storage = LocalStorage(settings.files_dir)
    executor = LocalProcessExecutor(
        store,
        db_url=settings.db_url,
        files_dir=str(settings.files_dir),
        max_concurrent=settings.max_concurrent_jobs,
        nice=settings.worker_nice,
    )
    telemetry = Telemetry(store, lambda: executor.running)
    svc = Services(
        settings=settings,
        store=store,
        storage=storage,
        executor=executor,
        jobs=JobService(store, executor, max_queued=settings.max_queued_jobs),
        checkpoints=CheckpointService(
            store,
            storage,
            max_upload_bytes=settings.max_upload_bytes,
            max_samples=settings.max_samples,
            cache_size=settings.sampler_cache,
        ),
        telemetry=telemetry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(store.create_schema)
        recovered = await asyncio.to_thread(_recover, store)
        if recovered:
            log.warning("re-queued %d interrupted job(s): %s", len(recovered), ", ".join(recovered))
        await executor.start()
        try:
            yield
        finally:
            await executor.stop()
            store.dispose()

    app = FastAPI(
        title="curvegan",
        version="1.0.0",
        summary="Trains a small GAN (MorvanZhou's 406_GAN) and serves the curves it draws.",
        lifespan=lifespan,
    )
    app.state.services = svc
    install_error_handlers(app)
    auth = [Depends(require_api_key)]
    app.include_router(jobs.router, dependencies=auth)
    app.include_router(checkpoints.router, dependencies=auth)
    app.include_router(ops.router)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    return app
