"""The AsyncClient against the real service: the core flow and the exception tree. Each test
drives its coroutine with asyncio.run, so no pytest asyncio plugin is needed."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np

from curvegan import AsyncClient, RetryPolicy
from curvegan import errors as client_errors
from curvegan.models import Checkpoint, Event, Job, MetricRow, Samples
from tests.conftest import Server, free_port
from tests.curvegan.conftest import LONG, TINY


def recording_async_http(url: str) -> tuple[httpx.AsyncClient, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    async def record(request: httpx.Request) -> None:
        seen.append((request.method, request.url.path))

    http = httpx.AsyncClient(base_url=url, timeout=30.0, event_hooks={"request": [record]})
    return http, seen


def test_async_create_wait_sample_and_checkpoints(shared_server: Server) -> None:
    async def flow() -> dict[str, Any]:
        http, seen = recording_async_http(shared_server.url)
        async with http, AsyncClient(http=http) as api:
            created = await api.create_job(TINY, name="async")
            final = await api.wait(created.id, timeout=60, poll_interval=30)
            waited = list(seen)
            assert final.latest_checkpoint is not None
            ck = final.latest_checkpoint
            data = await api.download_checkpoint(ck)
            assert isinstance(data, bytes)
            up = await api.upload_checkpoint(data)
            await api.delete_checkpoint(up.id)
            return {
                "created": created,
                "final": final,
                "waited": waited,
                "a": await api.sample(ck, 4, seed=3),
                "b": await api.sample(ck, 4, seed=3),
                "z": await api.sample(ck, z=np.zeros((2, 5))),
                "by_job": await api.sample_job(created.id, 4, seed=3),
                "svg": await api.checkpoint_figure(ck, "svg", n=2, seed=1),
                "png": await api.job_figure(created.id, n=1, width=300, height=200),
                "rows": await api.job_metrics(created.id),
                "events": [e async for e in api.iter_events(created.id)],
                "listed": await api.list_jobs(state="succeeded"),
                "got": await api.get_job(created.id),
                "meta": await api.get_checkpoint(ck),
                "data": data,
                "up": up,
                "gone": await _raises(api.get_checkpoint(up.id)),
            }

    r = asyncio.run(flow())
    created, final = r["created"], r["final"]
    assert isinstance(created, Job) and created.state in {"queued", "running"}
    assert created.name == "async" and created.config["seed"] == 7
    assert isinstance(final, Job) and final.state == "succeeded" and final.step == 200
    jid = created.id
    assert r["waited"] == [
        ("POST", "/v1/jobs"),
        ("GET", f"/v1/jobs/{jid}"),
        ("GET", f"/v1/jobs/{jid}/events"),
        ("GET", f"/v1/jobs/{jid}"),
    ]

    a, b = r["a"], r["b"]
    assert isinstance(a, Samples) and isinstance(a.curves, np.ndarray)
    assert a.curves.dtype == np.float32 and a.curves.shape == (4, 15)
    np.testing.assert_array_equal(a.curves, b.curves)
    np.testing.assert_array_equal(r["by_job"].curves, a.curves)
    assert a.seed == 3 and a.checkpoint_id == final.latest_checkpoint
    assert r["z"].curves.shape == (2, 15) and r["z"].seed is None
    assert r["svg"].startswith(b"<?xml") and b'id="curve-1"' in r["svg"]
    assert b'id="curve-2"' not in r["svg"]
    png = r["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == bytes.fromhex("0000012c000000c8")

    assert all(isinstance(row, MetricRow) for row in r["rows"])
    assert [row.step for row in r["rows"]] == [100, 200]
    events = r["events"]
    assert all(isinstance(e, Event) for e in events)
    assert [e.data["step"] for e in events if e.type == "metrics"] == [100, 200]
    assert events[-1].type == "state" and events[-1].data["state"] == "succeeded"
    assert jid in {j.id for j in r["listed"].items}
    assert r["got"].model_dump() == final.model_dump()

    meta, up = r["meta"], r["up"]
    assert isinstance(meta, Checkpoint) and hashlib.sha256(r["data"]).hexdigest() == meta.sha256
    assert isinstance(up, Checkpoint) and up.source == "upload" and up.sha256 == meta.sha256
    assert isinstance(r["gone"], client_errors.NotFoundError)


async def _raises(awaitable: Awaitable[Any]) -> BaseException | None:
    try:
        await awaitable
    except Exception as exc:
        return exc
    return None


def test_async_errors_timeout_and_cancel(shared_server: Server) -> None:
    async def flow() -> dict[str, Any]:
        async with AsyncClient(shared_server.url) as api:
            out: dict[str, Any] = {
                "not_found": await _raises(api.get_job("job_nope")),
                "ck_not_found": await _raises(api.sample("ck_nope", 1)),
                "events_not_found": await _raises(_drain(api.iter_events("job_nope"))),
                "invalid": await _raises(api.create_job({"steps": -1})),
            }
            job = await api.create_job(LONG)
            try:
                t0 = time.monotonic()
                out["timeout"] = await _raises(api.wait(job.id, timeout=0.5, poll_interval=0.1))
                out["timeout_s"] = time.monotonic() - t0
            finally:
                await api.cancel_job(job.id)
            out["cancelled"] = await api.wait(job.id, timeout=30)  # no raise for cancelled
            out["conflict"] = await _raises(api.cancel_job(job.id))
            await api.delete_job(job.id)
            out["deleted"] = await _raises(api.get_job(job.id))
            return out

    r = asyncio.run(flow())
    assert isinstance(r["not_found"], client_errors.NotFoundError) and r["not_found"].status == 404
    assert isinstance(r["ck_not_found"], client_errors.NotFoundError)
    assert isinstance(r["events_not_found"], client_errors.NotFoundError)
    invalid = r["invalid"]
    assert isinstance(invalid, client_errors.ValidationError) and invalid.field == "config.steps"
    assert "[1, 10000000]" in invalid.message
    assert isinstance(r["timeout"], TimeoutError) and r["timeout_s"] < 5.0
    assert r["cancelled"].state == "cancelled"
    assert isinstance(r["conflict"], client_errors.ConflictError) and r["conflict"].status == 409
    assert isinstance(r["deleted"], client_errors.NotFoundError)


async def _drain(events: Any) -> list[Event]:
    return [e async for e in events]


ASYNC_BAD_CALLS: dict[str, Callable[[AsyncClient], Awaitable[Any]]] = {
    "sample n=0": lambda a: a.sample("ck_x", n=0),
    "sample n='3'": lambda a: a.sample("ck_x", n="3"),
    "sample seed=-1": lambda a: a.sample("ck_x", 3, seed=-1),
    "sample z and n disagree": lambda a: a.sample("ck_x", n=3, z=[[0.0] * 5] * 2),
    "get_job ../x": lambda a: a.get_job("../x"),
    "list_jobs state=bogus": lambda a: a.list_jobs(state="bogus"),
    "list_jobs limit=0": lambda a: a.list_jobs(limit=0),
    "wait timeout=0": lambda a: a.wait("job_x", timeout=0),
    "iter_events since_step=-1": lambda a: _drain(a.iter_events("job_x", since_step=-1)),
    "upload empty": lambda a: a.upload_checkpoint(b""),
    "job_figure svgz": lambda a: a.job_figure("job_x", "svgz"),
    "checkpoint_figure seed=-1": lambda a: a.checkpoint_figure("ck_x", seed=-1),
}


def test_async_usage_errors_before_any_request(shared_server: Server) -> None:
    async def flow() -> tuple[dict[str, BaseException | None], list[tuple[str, str]]]:
        http, seen = recording_async_http(shared_server.url)
        async with http, AsyncClient(http=http) as api:
            errors = {name: await _raises(call(api)) for name, call in ASYNC_BAD_CALLS.items()}
            before = list(seen)
            await api.list_jobs()  # the hook does record what is sent
            assert seen[len(before) :] == [("GET", "/v1/jobs")]
            return errors, before

    errors, seen = asyncio.run(flow())
    wrong = {
        name: repr(e) for name, e in errors.items() if not isinstance(e, client_errors.UsageError)
    }
    assert wrong == {}
    assert seen == []


def test_async_unreachable_server_is_unavailable() -> None:
    port = free_port()  # nothing listens here

    async def flow() -> dict[str, Any]:
        retry = RetryPolicy(retries=1, backoff=0.01)
        async with AsyncClient(f"http://127.0.0.1:{port}", retry=retry, timeout=5.0) as api:
            return {
                "get": await _raises(api.get_job("job_x")),
                "create": await _raises(api.create_job(TINY)),
                "wait": await _raises(api.wait("job_x", timeout=5)),
                "health": await api.health(),
            }

    r = asyncio.run(flow())
    for name in ("get", "create", "wait"):
        assert isinstance(r[name], client_errors.UnavailableError), (name, r[name])
        assert isinstance(r[name], client_errors.CurveganError) and not isinstance(
            r[name], client_errors.ApiError
        )
    assert r["health"] is False
