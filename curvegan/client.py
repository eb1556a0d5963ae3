"""The synchronous client: one method per endpoint of the v1 API.

from curvegan import Client
with Client("http://127.0.0.1:8000", api_key=None) as api:
    job = api.create_job({"steps": 3000, "seed": 1})
    job = api.wait(job.id, timeout=600)
    curves = api.sample(job.latest_checkpoint, n=100, seed=0).curves   # (100, 15)

What each method does is decided in ``_core.py``; this module only does its I/O, blocking.
``aio.py`` is its twin (tests/curvegan/test_twins.py holds the two to the same methods).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from . import _calls as calls
from . import _core as core
from ._core import DEFAULT_URL, KEEPALIVE_GRACE_S, BaseClient, Plan, Step
from ._retry import RetryPolicy
from ._url import root_url
from .models import (
    Checkpoint,
    CheckpointList,
    Event,
    Job,
    JobList,
    MetricRow,
    Samples,
    Sweep,
    SweepList,
)

T = TypeVar("T")


class Client(BaseClient):
    """Talks to a curvegan server. Pass ``http`` to use your own ``httpx.Client`` (its base
    URL and transport are used as they are)."""

    http: httpx.Client

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        own = http is None
        http = http or httpx.Client(base_url=root_url(url), timeout=timeout)
        super().__init__(http, owns_http=own, api_key=api_key, retry=retry)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------ I/O
    def _do(self, effect: core.Effect) -> Any:
        """Does one effect of a plan (see ``_core``); what it returns is sent to the plan."""
        if isinstance(effect, core.Send):
            resp = self.http.send(effect.request, stream=effect.stream)
            if not effect.stream:
                return resp
            if resp.status_code >= 400:
                resp.read()  # the error's body, for the plan to raise
            return resp, resp.iter_lines()
        if isinstance(effect, core.NextLine):
            # httpx fixed this response's read timeout when it started (the request has
            # the bound): a sync read cannot be bounded again on its own.
            return next(effect.lines, None)
        if isinstance(effect, core.Close):
            return effect.response.close()
        return time.sleep(effect.seconds)  # Sleep

    def _drive(self, step: Step[Any]) -> Iterator[Event]:
        """Runs a plan: does its effects and yields its events."""
        try:
            for effect in step:
                if isinstance(effect, Event):
                    yield effect
                    continue
                try:
                    step.answer = self._do(effect)
                except Exception as exc:  # the plan decides what it means
                    step.error = exc
        finally:
            for resp in step.close():  # streams left open: the caller stopped early
                resp.close()

    def _run(self, plan: Plan[T]) -> T:
        step = Step(plan)
        for _ in self._drive(step):
            pass  # only iter_events and iter_sweep_events hand their events on
        return step.value

    def _call(self, call: calls.Call) -> Any:
        return self._run(self._sending(call))

    # ------------------------------------------------------------ jobs
    def create_job(
        self,
        config: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        resume_from: str | None = None,
        preset: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queues a training job (``POST /v1/jobs``); retries never start a second job."""
        return self._call(calls.create_job(config, name, resume_from, preset, idempotency_key))

    def list_jobs(
        self,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        sweep_id: str | None = None,
    ) -> JobList:
        """Jobs, newest first; with ``sweep_id``, only that sweep's members."""
        return self._call(calls.list_jobs(state, limit, offset, sweep_id))

    def get_job(self, job_id: str) -> Job:
        return self._call(calls.get_job(job_id))

    def job_metrics(self, job_id: str, since_step: int = 0, limit: int = 10_000) -> list[MetricRow]:
        return self._call(calls.job_metrics(job_id, since_step, limit))

    def iter_events(
        self,
        job_id: str,
        since_step: int = 0,
        *,
        timeout: float | None = None,
        read_timeout: float = KEEPALIVE_GRACE_S,
    ) -> Iterator[Event]:
        """The job's server-sent events until the stream ends, after a final state (or
        "deleted"). A stream that drops before that (a ``dropped`` frame too: the server let go
        of a reader that fell behind) is resumed after the last frame seen
        (Last-Event-ID), up to ``retry.retries`` times in a row. The server sends a keep-alive every 15 s, so a
        stream silent for ``read_timeout`` seconds raises UnavailableError. With ``timeout``,
        raises TimeoutError once that many seconds have passed; it is checked on every line,
        keep-alives included, so it fires at most a keep-alive interval late, and on time
        when the stream is silent."""
        return self._drive(Step(self._job_events(job_id, since_step, timeout, read_timeout)))

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        poll_interval: float = 1.0,
        raise_on_failure: bool = True,
    ) -> Job:
        """Waits until the job is succeeded, failed or cancelled and returns it. Follows the
        event stream, falling back to polling if the stream is unavailable. Raises
        TimeoutError after ``timeout`` seconds and JobFailedError if it failed (unless
        ``raise_on_failure`` is False)."""
        return self._run(self._waiting(job_id, timeout, poll_interval, raise_on_failure))

    def cancel_job(self, job_id: str) -> Job:
        return self._call(calls.cancel_job(job_id))

    def delete_job(self, job_id: str) -> None:
        self._call(calls.delete_job(job_id))

    def save_checkpoint(self, job_id: str) -> Checkpoint:
        """Asks a running job to checkpoint at its next step."""
        return self._call(calls.save_checkpoint(job_id))

    def sample_job(
        self, job_id: str, n: int | None = None, *, seed: int | None = None, z: Any = None
    ) -> Samples:
        return self._call(calls.sample_job(job_id, n, seed, z))

    def job_figure(
        self,
        job_id: str,
        fmt: str = "png",
        *,
        n: int = 3,
        seed: int | None = None,
        width: int = 640,
        height: int = 480,
    ) -> bytes:
        """The tutorial's figure (``fmt`` png or svg) of ``n`` curves from the job's latest
        checkpoint, with its latest D accuracy and score: the image's bytes."""
        return self._call(calls.job_figure(job_id, fmt, n, seed, (width, height)))

    # ------------------------------------------------------------ sweeps
    def create_sweep(
        self,
        config: dict[str, Any] | None = None,
        *,
        vary: dict[str, list[Any]] | None = None,
        members: list[dict[str, Any]] | None = None,
        preset: str | None = None,
        name: str | None = None,
        best_by: str | None = None,
        idempotency_key: str | None = None,
    ) -> Sweep:
        """Queues a sweep (``POST /v1/sweeps``): a base recipe (``preset``, ``config``) and
        exactly one of ``vary`` (a grid ``{field: [values]}``) or ``members`` (a list of
        ``{field: value}``), all members or none. Retries never start a second sweep."""
        return self._call(
            calls.create_sweep(config, vary, members, preset, name, best_by, idempotency_key)
        )

    def list_sweeps(self, limit: int = 100, offset: int = 0) -> SweepList:
        """Sweeps, newest first, without their members (``get_sweep`` has them)."""
        return self._call(calls.list_sweeps(limit, offset))

    def get_sweep(self, sweep_id: str) -> Sweep:
        return self._call(calls.get_sweep(sweep_id))

    def cancel_sweep(self, sweep_id: str) -> Sweep:
        """Cancels every member not yet final (running ones stop within about a second)."""
        return self._call(calls.cancel_sweep(sweep_id))

    def delete_sweep(self, sweep_id: str) -> None:
        """Deletes a finished sweep and its member jobs; their checkpoints stay."""
        self._call(calls.delete_sweep(sweep_id))

    def iter_sweep_events(
        self,
        sweep_id: str,
        *,
        timeout: float | None = None,
        read_timeout: float = KEEPALIVE_GRACE_S,
    ) -> Iterator[Event]:
        """The sweep's server-sent events until the stream ends: "sweep" events (data: the
        Sweep) on connecting and on each change of a member's state or step, the last one
        final; or "deleted". Resuming, ``timeout`` and ``read_timeout`` as for ``iter_events``."""
        return self._drive(Step(self._sweep_events(sweep_id, timeout, read_timeout)))

    def wait_sweep(
        self, sweep_id: str, timeout: float | None = None, *, poll_interval: float = 1.0
    ) -> Sweep:
        """Waits until every member is final and returns the Sweep. Follows the event stream,
        falling back to polling if the stream is unavailable; raises TimeoutError after
        ``timeout`` seconds. A sweep with failed members is returned, not raised: its
        ``counts.failed`` (and each member's state) tell."""
        return self._run(self._waiting_sweep(sweep_id, timeout, poll_interval))

    # ------------------------------------------------------------ checkpoints
    def list_checkpoints(
        self, job_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> CheckpointList:
        return self._call(calls.list_checkpoints(job_id, limit, offset))

    def get_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        return self._call(calls.get_checkpoint(checkpoint_id))

    def download_checkpoint(
        self, checkpoint_id: str, path: str | Path | None = None
    ) -> bytes | Path:
        """The safetensors file: its bytes, or written to ``path`` (returned)."""
        return self._run(self._downloading(checkpoint_id, path))

    def upload_checkpoint(self, data: bytes | str | Path) -> Checkpoint:
        """Uploads a checkpoint file (bytes or a path); the server validates it."""
        return self._call(calls.upload_checkpoint(data))

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        self._call(calls.delete_checkpoint(checkpoint_id))

    def sample(
        self, checkpoint_id: str, n: int | None = None, *, seed: int | None = None, z: Any = None
    ) -> Samples:
        """``n`` curves (or one per row of ``z``); a numpy array when numpy is installed."""
        return self._call(calls.sample_checkpoint(checkpoint_id, n, seed, z))

    def checkpoint_figure(
        self,
        checkpoint_id: str,
        fmt: str = "png",
        *,
        n: int = 3,
        seed: int | None = None,
        width: int = 640,
        height: int = 480,
    ) -> bytes:
        """The tutorial's figure (``fmt`` png or svg) of ``n`` of the checkpoint's curves
        between the artist's bounds: the image's bytes."""
        return self._call(calls.checkpoint_figure(checkpoint_id, fmt, n, seed, (width, height)))

    # ------------------------------------------------------------ operations
    def health(self) -> bool:
        return self._run(self._checking_health())

    def ready(self) -> dict[str, Any]:
        return self._call(calls.ready())
