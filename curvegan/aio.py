"""The asynchronous client: the same methods as ``Client``, awaited.

from curvegan import AsyncClient
async with AsyncClient("http://127.0.0.1:8000", api_key=None) as api:
    job = await api.create_job({"steps": 3000, "seed": 1})
    job = await api.wait(job.id, timeout=600)
    curves = (await api.sample(job.latest_checkpoint, n=100, seed=0)).curves   # (100, 15)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from . import _calls as calls
from ._retry import RETRY_STATUSES, RetryPolicy
from ._url import root_url
from .errors import JobFailedError, UnavailableError
from .models import (
    FINAL_STATES,
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

DEFAULT_URL = "http://127.0.0.1:8000"
# The server sends a keep-alive comment every 15 s on an idle event stream.
KEEPALIVE_GRACE_S = 20.0


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class AsyncClient:
    """Talks to a curvegan server. Pass ``http`` to use your own ``httpx.AsyncClient`` (its base
    URL and transport are used as they are)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(base_url=root_url(url), timeout=timeout)
        self.http.headers.update(_headers(api_key))

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ transport
    async def _send(self, call: calls.Call) -> Any:
        attempt = 0
        while True:
            try:
                resp = await self.http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    content=call.content,
                    headers=call.headers,
                )
            except httpx.TransportError as exc:
                if attempt >= self.retry.retries or not self.retry.may_retry(call.idempotent, exc):
                    raise UnavailableError(f"cannot reach {self.http.base_url}: {exc}") from exc
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            retryable = resp.status_code in RETRY_STATUSES and call.idempotent
            if retryable and attempt < self.retry.retries:
                await asyncio.sleep(self.retry.delay(attempt, resp))
                attempt += 1
                continue
            calls.raise_for_error(resp, attempt + 1)
            return call.parse(resp)

    # ------------------------------------------------------------ jobs
    async def create_job(
        self,
        config: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        resume_from: str | None = None,
        preset: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queues a training job (``POST /v1/jobs``); retries never start a second job."""
        return await self._send(
            calls.create_job(config, name, resume_from, preset, idempotency_key)
        )

    async def list_jobs(
        self,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        sweep_id: str | None = None,
    ) -> JobList:
        """Jobs, newest first; with ``sweep_id``, only that sweep's members."""
        return await self._send(calls.list_jobs(state, limit, offset, sweep_id))

    async def get_job(self, job_id: str) -> Job:
        return await self._send(calls.get_job(job_id))

    async def job_metrics(
        self, job_id: str, since_step: int = 0, limit: int = 10_000
    ) -> list[MetricRow]:
        return await self._send(calls.job_metrics(job_id, since_step, limit))

    def iter_events(
        self,
        job_id: str,
        since_step: int = 0,
        *,
        timeout: float | None = None,
        read_timeout: float = KEEPALIVE_GRACE_S,
    ) -> AsyncIterator[Event]:
        """The job's server-sent events until the stream ends (after a final state). The
        server sends a keep-alive every 15 s, so a stream silent for ``read_timeout`` seconds
        raises UnavailableError. With ``timeout``, raises TimeoutError once that many seconds
        have passed, whether or not the server is sending anything."""
        return self._stream(
            lambda: calls.events_path(job_id, since_step), job_id, timeout, read_timeout
        )

    async def _stream(
        self,
        target: Callable[[], tuple[str, dict[str, Any] | None]],
        owner: str,
        timeout: float | None,
        read_timeout: float,
    ) -> AsyncIterator[Event]:
        """The events of one server-sent event stream (a job's or a sweep's). ``target`` gives
        its path and query; called here, so bad arguments raise on the first iteration, as
        they always have, and never before the caller iterates."""
        deadline = calls.deadline_after(timeout)
        path, params = target()
        http_timeout = httpx.Timeout(self.http.timeout.connect or 10.0, read=read_timeout)
        try:
            async with self.http.stream("GET", path, params=params, timeout=http_timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    calls.raise_for_error(resp)
                parser = calls.SseParser()
                lines = resp.aiter_lines()
                while True:
                    try:
                        # The deadline bounds every read, so a silent stream cannot outlast it.
                        async with asyncio.timeout(calls.remaining(deadline)):
                            line = await anext(lines)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        calls.check_deadline(deadline, owner, timeout)
                        raise
                    event = parser.feed(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise UnavailableError(f"event stream of {owner} broke: {exc}") from exc

    async def wait(
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
        calls.check_timeout(timeout)
        deadline = calls.deadline_after(timeout)
        job = await self.get_job(job_id)
        if not job.is_final:
            try:
                # aclosing: leaving the loop early must close the stream now, not at GC.
                events = self.iter_events(job_id, timeout=calls.remaining(deadline))
                async with contextlib.aclosing(events):
                    async for event in events:
                        if event.type == "state" and event.data.get("state") in FINAL_STATES:
                            break
            except (TimeoutError, UnavailableError, httpx.HTTPError):
                pass  # the stream is a convenience; polling below always works
            job = await self.get_job(job_id)
            while not job.is_final:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {job_id} still {job.state} after {timeout}s")
                await asyncio.sleep(min(poll_interval, calls.remaining(deadline) or poll_interval))
                job = await self.get_job(job_id)
        if raise_on_failure and job.state == "failed":
            raise JobFailedError(job)
        return job

    async def cancel_job(self, job_id: str) -> Job:
        return await self._send(calls.cancel_job(job_id))

    async def delete_job(self, job_id: str) -> None:
        await self._send(calls.delete_job(job_id))

    async def save_checkpoint(self, job_id: str) -> Checkpoint:
        """Asks a running job to checkpoint at its next step."""
        return await self._send(calls.save_checkpoint(job_id))

    async def sample_job(
        self, job_id: str, n: int | None = None, *, seed: int | None = None, z: Any = None
    ) -> Samples:
        return await self._send(calls.sample_job(job_id, n, seed, z))

    async def job_figure(
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
        return await self._send(calls.job_figure(job_id, fmt, n, seed, (width, height)))

    # ------------------------------------------------------------ sweeps
    async def create_sweep(
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
        return await self._send(
            calls.create_sweep(config, vary, members, preset, name, best_by, idempotency_key)
        )

    async def list_sweeps(self, limit: int = 100, offset: int = 0) -> SweepList:
        """Sweeps, newest first, without their members (``get_sweep`` has them)."""
        return await self._send(calls.list_sweeps(limit, offset))

    async def get_sweep(self, sweep_id: str) -> Sweep:
        return await self._send(calls.get_sweep(sweep_id))

    async def cancel_sweep(self, sweep_id: str) -> Sweep:
        """Cancels every member not yet final (running ones stop within about a second)."""
        return await self._send(calls.cancel_sweep(sweep_id))

    async def delete_sweep(self, sweep_id: str) -> None:
        """Deletes a finished sweep and its member jobs; their checkpoints stay."""
        await self._send(calls.delete_sweep(sweep_id))

    def iter_sweep_events(
        self,
        sweep_id: str,
        *,
        timeout: float | None = None,
        read_timeout: float = KEEPALIVE_GRACE_S,
    ) -> AsyncIterator[Event]:
        """The sweep's server-sent events until the stream ends: "sweep" events (data: the
        Sweep) on connecting and on each change of a member's state or step, the last one
        final; or "deleted". ``timeout`` and ``read_timeout`` as for ``iter_events``."""
        return self._stream(
            lambda: (calls.sweep_events_path(sweep_id), None), sweep_id, timeout, read_timeout
        )

    async def wait_sweep(
        self, sweep_id: str, timeout: float | None = None, *, poll_interval: float = 1.0
    ) -> Sweep:
        """Waits until every member is final and returns the Sweep. Follows the event stream,
        falling back to polling if the stream is unavailable; raises TimeoutError after
        ``timeout`` seconds. A sweep with failed members is returned, not raised: its
        ``counts.failed`` (and each member's state) tell."""
        deadline = calls.deadline_after(timeout)
        try:
            # aclosing: leaving the loop early must close the stream now, not at GC.
            events = self.iter_sweep_events(sweep_id, timeout=calls.remaining(deadline))
            async with contextlib.aclosing(events):
                async for event in events:
                    if event.type == "sweep":
                        sweep = Sweep.model_validate(event.data)
                        if sweep.is_final:
                            return sweep  # the last frame is the final sweep
        except (TimeoutError, UnavailableError, httpx.HTTPError):
            pass  # the stream is a convenience; polling below always works
        sweep = await self.get_sweep(sweep_id)
        while not sweep.is_final:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {sweep_id} still {sweep.state} after {timeout}s")
            await asyncio.sleep(min(poll_interval, calls.remaining(deadline) or poll_interval))
            sweep = await self.get_sweep(sweep_id)
        return sweep

    # ------------------------------------------------------------ checkpoints
    async def list_checkpoints(
        self, job_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> CheckpointList:
        return await self._send(calls.list_checkpoints(job_id, limit, offset))

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        return await self._send(calls.get_checkpoint(checkpoint_id))

    async def download_checkpoint(
        self, checkpoint_id: str, path: str | Path | None = None
    ) -> bytes | Path:
        """The safetensors file: its bytes, or written to ``path`` (returned)."""
        call = calls.Call(
            "GET", calls.checkpoint_file_path(checkpoint_id), lambda r: r.content, idempotent=True
        )
        data: bytes = await self._send(call)
        if path is None:
            return data
        target = Path(path)
        target.write_bytes(data)
        return target

    async def upload_checkpoint(self, data: bytes | str | Path) -> Checkpoint:
        """Uploads a checkpoint file (bytes or a path); the server validates it."""
        return await self._send(calls.upload_checkpoint(data))

    async def delete_checkpoint(self, checkpoint_id: str) -> None:
        await self._send(calls.delete_checkpoint(checkpoint_id))

    async def sample(
        self, checkpoint_id: str, n: int | None = None, *, seed: int | None = None, z: Any = None
    ) -> Samples:
        """``n`` curves (or one per row of ``z``); a numpy array when numpy is installed."""
        return await self._send(calls.sample_checkpoint(checkpoint_id, n, seed, z))

    async def checkpoint_figure(
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
        return await self._send(
            calls.checkpoint_figure(checkpoint_id, fmt, n, seed, (width, height))
        )

    # ------------------------------------------------------------ operations
    async def health(self) -> bool:
        try:
            return (await self.http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    async def ready(self) -> dict[str, Any]:
        return await self._send(calls.Call("GET", "/readyz", calls.parse_json, idempotent=True))
