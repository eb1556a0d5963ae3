"""The app factory: settings, store, storage, runner and routes, wired in a lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI

from ..core.checkpoints import CheckpointService
from ..core.events import EventHub
from ..core.figure_pool import FigurePool
from ..core.health import Health
from ..core.janitor import janitor
from ..core.jobs import JobService
from ..core.sweeps import SweepService
from ..runners import make_runner
from ..settings import Settings
from ..storage import make_storage
from ..store import Store
from .dashboard import install_dashboard
from .deps import Services, require_api_key
from .docs import install_docs
from .errors import install_error_handlers
from .headers import SecurityHeaders
from .limits import BodyLimit, RequestGate
from .openapi import honest_openapi, operation_id
from .routes import checkpoints, jobs, ops, sweeps
from .telemetry import Telemetry, TelemetryMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    storage = make_storage(settings.storage_url, settings.files_dir)
    runner = make_runner(store, settings)
    events = EventHub(store, max_streams=settings.max_event_streams)
    telemetry = Telemetry(store, lambda: runner.busy_workers, events)
    svc = Services(
        settings=settings,
        jobs=JobService(
            store,
            runner,
            max_queued=settings.max_queued_jobs,
            storage=storage,
            max_data_bytes=settings.max_data_bytes,
        ),
        sweeps=SweepService(
            store,
            runner,
            max_queued=settings.max_queued_jobs,
            max_members=settings.max_sweep_members,
        ),
        checkpoints=CheckpointService(
            store,
            storage,
            max_upload_bytes=settings.max_upload_bytes,
            max_samples=settings.max_samples,
            cache_size=settings.sampler_cache,
            max_data_bytes=settings.max_data_bytes,
        ),
        events=events,
        figures=FigurePool(
            workers=settings.figure_workers,
            queue=settings.figure_queue,
            max_pixels=settings.max_figure_pixels,
        ),
        health=Health(store, runner),
        telemetry=telemetry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Recovery is not an assumption made here: jobs another server runs on this store
        # keep running; those whose worker died come back when their lease lapses.
        await asyncio.to_thread(store.migrate)
        # Sampling here runs on one intra-op thread, as the workers train: with the cores
        # busy training, torch's pool of two waits on a descheduled thread at every op (on
        # this 2-core machine, n=16: 7.4 ms CPU instead of 0.3; n=100 000: 234 ms instead of
        # 36), and what it burns is taken from the training. The curves are the same.
        torch.set_num_threads(1)
        await runner.start()
        try:
            async with janitor(store, storage, settings.stale_file_seconds):
                yield
        finally:
            await runner.stop()
            await asyncio.to_thread(svc.figures.close)
            store.dispose()

    app = FastAPI(
        title="curvegan",
        version="1.0.0",
        summary="Trains a small GAN (MorvanZhou's 406_GAN) and serves the curves it draws.",
        lifespan=lifespan,
        # Served from vendored files by install_docs, not FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.services = svc
    install_error_handlers(app)
    auth = [Depends(require_api_key)]
    app.include_router(jobs.router, dependencies=auth)
    app.include_router(sweeps.router, dependencies=auth)
    app.include_router(checkpoints.router, dependencies=auth)
    app.include_router(ops.router)
    install_docs(app)
    install_dashboard(app)
    # Before any route reads a body: the key, the site, then the body's size and time.
    app.add_middleware(
        RequestGate,
        api_key=settings.api_key,
        default_limit=BodyLimit(settings.max_body_bytes, "CURVEGAN_MAX_BODY_BYTES"),
        route_limits={
            ("POST", "/v1/checkpoints"): BodyLimit(
                settings.max_upload_bytes, "CURVEGAN_MAX_UPLOAD_BYTES"
            )
        },
        body_timeout=settings.body_timeout_seconds,
        allowed_origins=settings.allowed_origin_set,
    )
    app.add_middleware(SecurityHeaders)
    # Outermost, so requests the gate refuses are counted too.
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    honest_openapi(app, settings)
    return app
