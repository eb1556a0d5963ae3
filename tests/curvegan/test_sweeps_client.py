"""Sweeps through the sync and async clients against the real service: typed results, waiting
on the event stream (and by polling when it is unavailable), cancel and delete, the exception
tree, and bad arguments refused before any request is sent. Members are tiny (200 steps) or
LONG and cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from curvegan import AsyncClient, Client, Event, Job, RetryPolicy
from curvegan.errors import (
    ConflictError,
    CurveganError,
    NotFoundError,
    UnavailableError,
    UsageError,
    ValidationError,
)
from curvegan.models import (
    LossMetrics,
    Quality,
    Sweep,
    SweepBest,
    SweepCounts,
    SweepList,
    SweepMember,
    SweepSummary,
)
from tests.conftest import Server, free_port

BASE = {"steps": 200, "log_every": 100}
GRID = {"seed": [1, 2], "lr_g": [1e-4, 2e-4]}
# Grid members in the server's order: fields sorted (lr_g, seed), the last varying fastest.
GRID_VALUES = [
    {"lr_g": 1e-4, "seed": 1},
    {"lr_g": 1e-4, "seed": 2},
    {"lr_g": 2e-4, "seed": 1},
    {"lr_g": 2e-4, "seed": 2},
]
LONG = {"steps": 1_000_000, "log_every": 50}


def recording_http(
    url: str, transport: httpx.BaseTransport | None = None
) -> tuple[httpx.Client, list[httpx.Request]]:
    """An httpx.Client that keeps every request it sends (method, path and headers)."""
    seen: list[httpx.Request] = []
    http = httpx.Client(
        base_url=url,
        timeout=30.0,
        transport=transport,
        event_hooks={"request": [seen.append]},  # type: ignore[list-item]
    )
    return http, seen


def paths(seen: list[httpx.Request]) -> list[tuple[str, str]]:
    return [(r.method, r.url.path) for r in seen]


@dataclasses.dataclass(frozen=True)
class Waited:
    created: Sweep
    final: Sweep
    requests: list[httpx.Request]  # what create_sweep + wait_sweep sent


@pytest.fixture(scope="module")
def grid(shared_server: Server) -> Waited:
    """A 2 x 2 grid of tiny members, created and waited for by a recorded client."""
    http, seen = recording_http(shared_server.url)
    with http, Client(http=http) as api:
        created = api.create_sweep(BASE, vary=GRID, name="grid")
        # poll_interval=30: were wait_sweep() polling instead of following events, it would be
        # slow and the recorded requests would show it.
        final = api.wait_sweep(created.id, timeout=60, poll_interval=30)
    return Waited(created, final, list(seen))


@contextlib.contextmanager
def long_sweep(api: Client, **kw: Any) -> Iterator[Sweep]:
    """A sweep of LONG members that, whatever the test did, is cancelled and waited for."""
    sweep = api.create_sweep(LONG, **({"vary": {"seed": [0, 1]}} | kw))
    try:
        yield sweep
    finally:
        with contextlib.suppress(CurveganError):
            api.cancel_sweep(sweep.id)
        with contextlib.suppress(CurveganError, TimeoutError):
            api.wait_sweep(sweep.id, timeout=30, poll_interval=0.2)


def wait_until(
    api: Client, sweep_id: str, ok: Callable[[Sweep], bool], timeout: float = 30
) -> Sweep:
    deadline = time.monotonic() + timeout
    while not ok(sweep := api.get_sweep(sweep_id)):
        assert time.monotonic() < deadline, sweep
        time.sleep(0.1)
    return sweep


# ----------------------------------------------------------------------------- create / wait
def test_create_sweep_returns_the_typed_queued_sweep_with_its_members(grid: Waited) -> None:
    sweep = grid.created
    assert isinstance(sweep, Sweep) and sweep.id.startswith("sweep_")
    assert (sweep.name, sweep.best_by, sweep.preset) == ("grid", "w1_a", "tutorial")
    assert sweep.config == BASE and sweep.vary == GRID
    assert sweep.member_count == 4 and not sweep.is_final
    assert isinstance(sweep.counts, SweepCounts) and sweep.counts.done == 0
    assert isinstance(sweep.created_at, datetime) and sweep.created_at.tzinfo is not None
    assert [m.values for m in sweep.members] == GRID_VALUES
    assert [m.member_index for m in sweep.members] == [0, 1, 2, 3]
    assert all(isinstance(m, SweepMember) and m.steps == 200 for m in sweep.members)
    assert sweep.best is None  # nothing logged yet


def test_create_sweep_sends_an_idempotency_key(grid: Waited) -> None:
    post = grid.requests[0]
    assert (post.method, post.url.path) == ("POST", "/v1/sweeps")
    assert post.headers["idempotency-key"].startswith("curvegan-client-")


def test_wait_sweep_follows_the_event_stream_to_the_final_sweep(grid: Waited) -> None:
    sweep, sid = grid.final, grid.created.id
    assert isinstance(sweep, Sweep) and sweep.id == sid
    assert sweep.state == "succeeded" and sweep.is_final and sweep.progress == 1.0
    assert (sweep.counts.succeeded, sweep.counts.done) == (4, 4)
    for m in sweep.members:
        assert (m.state, m.step, m.progress) == ("succeeded", 200, 1.0) and m.is_final
        assert isinstance(m.metrics, LossMetrics) and isinstance(m.quality, Quality)
    # The stream's last frame is the final sweep: no look before or after it, and no polling.
    assert paths(grid.requests) == [("POST", "/v1/sweeps"), ("GET", f"/v1/sweeps/{sid}/events")]


def test_ranked_puts_the_servers_best_first(grid: Waited) -> None:
    sweep = grid.final
    assert isinstance(sweep.best, SweepBest)
    ranked = sweep.ranked()
    assert ranked[0].member_index == sweep.best.member_index
    assert ranked[0].job_id == sweep.best.job_id
    assert ranked[0].metric("w1_a") == pytest.approx(sweep.best.value)
    w1 = [m.metric("w1_a") for m in ranked]
    assert w1 == sorted(w1)  # type: ignore[type-var]
    assert sorted(m.member_index for m in ranked) == [0, 1, 2, 3]


def test_get_list_and_member_jobs_of_a_sweep(api: Client, grid: Waited) -> None:
    sid = grid.created.id
    assert api.get_sweep(sid) == grid.final

    page = api.list_sweeps(limit=1000)
    assert isinstance(page, SweepList) and page.total >= 1
    listed = next(s for s in page.items if s.id == sid)
    assert type(listed) is SweepSummary and listed.state == "succeeded"
    assert listed.member_count == 4 and listed.counts.succeeded == 4

    jobs = api.list_jobs(sweep_id=sid)
    assert jobs.total == 4 and all(isinstance(j, Job) for j in jobs.items)
    by_index = {j.member_index: j for j in jobs.items}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert all(j.sweep_id == sid and j.state == "succeeded" for j in jobs.items)
    assert {m.job_id for m in grid.final.members} == {j.id for j in jobs.items}
    assert [by_index[i].config["lr_g"] for i in range(4)] == [1e-4, 1e-4, 2e-4, 2e-4]
    assert api.list_jobs(state="succeeded", sweep_id=sid, limit=1).total == 4


def test_iter_sweep_events_of_a_final_sweep_is_one_final_frame(api: Client, grid: Waited) -> None:
    events = list(api.iter_sweep_events(grid.created.id, timeout=30))
    assert len(events) == 1 and isinstance(events[0], Event) and events[0].type == "sweep"
    assert Sweep.model_validate(events[0].data) == grid.final


def test_idempotency_key_replays_the_same_sweep_and_refuses_another(api: Client) -> None:
    key = f"sweep-test-{uuid.uuid4()}"
    first = api.create_sweep(BASE, members=[{"seed": 3}], idempotency_key=key)
    again = api.create_sweep(BASE, members=[{"seed": 3}], idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(ConflictError) as info:
        api.create_sweep(BASE, members=[{"seed": 4}], idempotency_key=key)
    assert info.value.status == 409 and info.value.field == "Idempotency-Key"
    api.wait_sweep(first.id, timeout=60)
    api.delete_sweep(first.id)


def test_members_preset_and_best_by_then_delete(api: Client) -> None:
    created = api.create_sweep(
        BASE,
        members=[{"seed": 1}, {"seed": 2, "hidden": 32}],
        preset="fast",
        name="listed",
        best_by="in_band",
    )
    assert (created.preset, created.best_by, created.vary) == ("fast", "in_band", None)
    assert [m.values for m in created.members] == [{"seed": 1}, {"seed": 2, "hidden": 32}]
    final = api.wait_sweep(created.id, timeout=60)
    assert final.state == "succeeded" and final.best is not None
    bands = [m.metric("in_band") for m in final.ranked()]
    assert bands == sorted(bands, reverse=True)  # type: ignore[type-var]
    assert final.ranked()[0].member_index == final.best.member_index

    api.delete_sweep(created.id)
    with pytest.raises(NotFoundError):
        api.get_sweep(created.id)
    with pytest.raises(NotFoundError):
        api.delete_sweep(created.id)
    assert api.list_jobs(sweep_id=created.id).total == 0


def test_wait_sweep_polls_when_the_event_stream_is_unavailable(shared_server: Server) -> None:
    class NoStreams(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/events"):
                raise httpx.ReadError("no streams here", request=request)
            return super().handle_request(request)

    http, seen = recording_http(shared_server.url, NoStreams())
    with http, Client(http=http) as api:
        sweep = api.create_sweep(BASE, members=[{"seed": 5}])
        final = api.wait_sweep(sweep.id, timeout=60, poll_interval=0.1)
        api.delete_sweep(sweep.id)
    assert final.state == "succeeded"
    sid = sweep.id
    assert paths(seen)[1] == ("GET", f"/v1/sweeps/{sid}/events")
    assert paths(seen)[2:-1] == [("GET", f"/v1/sweeps/{sid}")] * (len(seen) - 3)


# ----------------------------------------------------------------------------- cancel
def test_cancel_a_running_sweep_then_delete_it(api: Client) -> None:
    with long_sweep(api) as sweep:
        wait_until(api, sweep.id, lambda s: s.counts.running == 2)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=f"sweep {sweep.id} still running after 0.5s"):
            api.wait_sweep(sweep.id, timeout=0.5)
        assert time.monotonic() - t0 < 5
        with pytest.raises(ConflictError, match="cancel it first"):
            api.delete_sweep(sweep.id)

        asked = api.cancel_sweep(sweep.id)
        assert isinstance(asked, Sweep) and asked.id == sweep.id
        final = api.wait_sweep(sweep.id, timeout=30)
        assert final.state == "cancelled"
        assert [m.state for m in final.members] == ["cancelled", "cancelled"]
        assert all(0 < m.step < m.steps for m in final.members)
        with pytest.raises(ConflictError) as info:
            api.cancel_sweep(sweep.id)
        assert info.value.status == 409
        api.delete_sweep(sweep.id)
        assert api.list_jobs(sweep_id=sweep.id).total == 0


# ----------------------------------------------------------------------------- errors
BAD_CALLS: dict[str, Callable[[Client], Any]] = {
    "neither vary nor members": lambda a: a.create_sweep(BASE),
    "both vary and members": lambda a: a.create_sweep(vary={"seed": [1]}, members=[{}]),
    "vary empty": lambda a: a.create_sweep(vary={}),
    "vary not a dict": lambda a: a.create_sweep(vary=[("seed", [1])]),
    "vary values empty": lambda a: a.create_sweep(vary={"seed": []}),
    "vary values not a list": lambda a: a.create_sweep(vary={"seed": 3}),
    "vary values a string": lambda a: a.create_sweep(vary={"seed": "0..3"}),
    "vary key not a string": lambda a: a.create_sweep(vary={1: [1]}),
    "members empty": lambda a: a.create_sweep(members=[]),
    "members a dict": lambda a: a.create_sweep(members={"seed": 1}),
    "members of numbers": lambda a: a.create_sweep(members=[1, 2]),
    "member key not a string": lambda a: a.create_sweep(members=[{1: 2}]),
    "config not a dict": lambda a: a.create_sweep("steps=3", vary={"seed": [1]}),
    "preset empty": lambda a: a.create_sweep(vary={"seed": [1]}, preset=""),
    "name too long": lambda a: a.create_sweep(vary={"seed": [1]}, name="x" * 201),
    "best_by empty": lambda a: a.create_sweep(vary={"seed": [1]}, best_by=""),
    "best_by not a string": lambda a: a.create_sweep(vary={"seed": [1]}, best_by=3),
    "idempotency_key empty": lambda a: a.create_sweep(vary={"seed": [1]}, idempotency_key=""),
    "get_sweep ../x": lambda a: a.get_sweep("../x"),
    "get_sweep None": lambda a: a.get_sweep(None),
    "cancel_sweep a/b": lambda a: a.cancel_sweep("a/b"),
    "delete_sweep empty": lambda a: a.delete_sweep(""),
    "list_sweeps limit=0": lambda a: a.list_sweeps(limit=0),
    "list_sweeps offset=-1": lambda a: a.list_sweeps(offset=-1),
    "list_jobs sweep_id=..": lambda a: a.list_jobs(sweep_id=".."),
    "wait_sweep timeout=0": lambda a: a.wait_sweep("sweep_x", timeout=0),
    "wait_sweep bad id": lambda a: a.wait_sweep("sweep x"),
    "iter_sweep_events timeout=-1": lambda a: next(a.iter_sweep_events("sweep_x", timeout=-1)),
    "iter_sweep_events bad id": lambda a: next(a.iter_sweep_events("../x")),
}


def test_bad_arguments_raise_usage_error_before_any_request(shared_server: Server) -> None:
    http, seen = recording_http(shared_server.url)
    errors: dict[str, BaseException | None] = {}
    with http, Client(http=http) as api:
        for name, call in BAD_CALLS.items():
            try:
                call(api)
                errors[name] = None
            except BaseException as exc:  # checked below: each must be a UsageError
                errors[name] = exc
        before = paths(seen)
        api.list_sweeps()  # the hook does record what is sent
        assert paths(seen)[len(before) :] == [("GET", "/v1/sweeps")]
    wrong = {name: repr(e) for name, e in errors.items() if not isinstance(e, UsageError)}
    assert wrong == {}
    assert before == []
    assert "exactly one of vary" in str(errors["neither vary nor members"])
    assert "exactly one of vary" in str(errors["both vary and members"])


def test_server_refusals_map_into_the_exception_tree(api: Client) -> None:
    with pytest.raises(ValidationError) as info:
        api.create_sweep(BASE, vary={"seed": [1], "bogus": [1, 2]})
    assert info.value.status == 422 and info.value.field == "vary.bogus"
    with pytest.raises(ValidationError) as info:
        api.create_sweep(BASE, members=[{"seed": 1}, {"hidden": 0}])
    assert info.value.field == "members.1.hidden"
    with pytest.raises(ValidationError) as info:
        api.create_sweep(BASE, vary={"seed": [1]}, best_by="bogus")
    assert info.value.field == "best_by" and "w1_a" in info.value.message
    for call in (
        lambda: api.get_sweep("sweep_nope"),
        lambda: api.wait_sweep("sweep_nope", timeout=5),
        lambda: list(api.iter_sweep_events("sweep_nope")),
        lambda: api.cancel_sweep("sweep_nope"),
        lambda: api.delete_sweep("sweep_nope"),
    ):
        with pytest.raises(NotFoundError) as nf:
            call()
        assert nf.value.status == 404


def test_unreachable_server_is_unavailable() -> None:
    retry = RetryPolicy(retries=1, backoff=0.01)
    with Client(f"http://127.0.0.1:{free_port()}", retry=retry, timeout=5.0) as api:
        for call in (
            lambda: api.create_sweep(vary={"seed": [1]}),
            lambda: api.get_sweep("sweep_x"),
            lambda: api.wait_sweep("sweep_x", timeout=5),
        ):
            with pytest.raises(UnavailableError):
                call()


# ----------------------------------------------------------------------------- async
def test_async_sweep_create_wait_list_cancel_delete(shared_server: Server) -> None:
    async def flow() -> dict[str, Any]:
        async with AsyncClient(shared_server.url) as api:
            created = await api.create_sweep(BASE, vary={"seed": [1, 2]}, name="async")
            final = await api.wait_sweep(created.id, timeout=60, poll_interval=30)
            events = [e async for e in api.iter_sweep_events(created.id)]
            got = await api.get_sweep(created.id)
            page = await api.list_sweeps(limit=1000)
            jobs = await api.list_jobs(sweep_id=created.id)
            conflict: BaseException | None = None
            try:
                await api.cancel_sweep(created.id)  # already final
            except ConflictError as exc:
                conflict = exc
            await api.delete_sweep(created.id)
            missing: BaseException | None = None
            try:
                await api.get_sweep(created.id)
            except NotFoundError as exc:
                missing = exc
            usage: list[BaseException] = []
            for bad in (
                lambda: api.create_sweep(BASE),
                lambda: api.create_sweep(vary={"seed": []}),
                lambda: api.wait_sweep("sweep_x", timeout=0),
                lambda: anext(api.iter_sweep_events("../x")),
            ):
                try:
                    await bad()
                except UsageError as exc:
                    usage.append(exc)

            long = await api.create_sweep(LONG, vary={"seed": [0, 1]})
            try:
                timed_out = False
                try:
                    await api.wait_sweep(long.id, timeout=0.5)
                except TimeoutError:
                    timed_out = True
                await api.cancel_sweep(long.id)
                cancelled = await api.wait_sweep(long.id, timeout=30)
            finally:
                with contextlib.suppress(CurveganError):
                    await api.cancel_sweep(long.id)
            await api.delete_sweep(long.id)
            return {
                "created": created,
                "final": final,
                "events": events,
                "got": got,
                "page": page,
                "jobs": jobs,
                "conflict": conflict,
                "missing": missing,
                "usage": usage,
                "timed_out": timed_out,
                "cancelled": cancelled,
            }

    r = asyncio.run(flow())
    assert isinstance(r["created"], Sweep) and r["created"].member_count == 2
    assert r["final"].state == "succeeded" and r["final"] == r["got"]
    assert [e.type for e in r["events"]] == ["sweep"]
    assert r["events"][0].data["state"] == "succeeded"
    assert r["created"].id in [s.id for s in r["page"].items]
    assert r["jobs"].total == 2 and {j.sweep_id for j in r["jobs"].items} == {r["created"].id}
    assert isinstance(r["conflict"], ConflictError)
    assert isinstance(r["missing"], NotFoundError)
    assert len(r["usage"]) == 4
    assert r["timed_out"] is True
    assert r["cancelled"].state == "cancelled"
