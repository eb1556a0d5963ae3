"""The event hub in-process: a job's and a sweep's events as domain records, one shared poll
per job or sweep whatever the number of subscribers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from service.core.events import PAGE_ROWS, Event, EventHub, Subscription
from service.core.jobs import JobService
from service.core.sweeps import SweepService
from service.domain import METRIC_FIELDS, JobState, Lease
from service.domain.commands import CreateJob, CreateSweep
from service.store import Store


async def _take(events, n: int) -> list:  # type: ignore[no-untyped-def]
    out = []
    async for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


def test_a_missing_job_or_a_final_one_ends_at_once(store: Store, jobs: JobService) -> None:
    hub = EventHub(store, max_streams=4, poll_s=0.01)
    job, _ = jobs.create(CreateJob())
    jobs.cancel(job.id)

    async def main() -> tuple[list, list]:
        gone = [e async for e in hub.job_events("job_missing")]
        final = [e async for e in hub.job_events(job.id)]
        return gone, final

    gone, final = asyncio.run(main())
    assert [(e.kind, e.data) for e in gone] == [("deleted", "job_missing")]
    assert [e.kind for e in final] == ["state"] and final[0].data.state is JobState.CANCELLED
    assert hub.watched == 0


def test_subscribers_share_one_poll_and_see_the_change(store: Store, jobs: JobService) -> None:
    hub = EventHub(store, max_streams=4, poll_s=0.01)
    job, _ = jobs.create(CreateJob())

    async def main() -> list[list]:
        streams = [hub.job_events(job.id) for _ in range(3)]
        firsts = [await anext(s) for s in streams]
        assert hub.watched == 1 and all(e.data.state is JobState.QUEUED for e in firsts)
        await asyncio.to_thread(jobs.cancel, job.id)
        rest = await asyncio.gather(*(_take(s, 1) for s in streams))
        return rest

    rest = asyncio.run(main())
    assert [[e.data.state for e in r] for r in rest] == [[JobState.CANCELLED]] * 3
    assert hub.watched == 0


def test_a_sweep_stream_follows_its_members_to_the_end(store: Store, sweeps: SweepService) -> None:
    hub = EventHub(store, max_streams=4, sweep_poll_s=0.01)
    sweep, _ = sweeps.create(CreateSweep(vary={"seed": [1, 2]}))

    async def main() -> list:
        a, b = hub.sweep_events(sweep), hub.sweep_events(sweep)
        first = [await anext(a), await anext(b)]
        assert hub.watched == 1
        await asyncio.to_thread(sweeps.cancel, sweep.id)
        return first + [e async for e in a] + [e async for e in b]

    events = asyncio.run(main())
    assert [e.kind for e in events] == ["sweep"] * 4
    states = [{m.state for m in e.data[1]} for e in events]
    assert states == [{JobState.QUEUED}] * 2 + [{JobState.CANCELLED}] * 2
    assert hub.watched == 0


def test_a_deleted_sweep_ends_its_stream(store: Store, sweeps: SweepService) -> None:
    # The first poll comes a second after subscribing: the sweep is gone by then.
    hub = EventHub(store, max_streams=4, sweep_poll_s=1.0)
    sweep, _ = sweeps.create(CreateSweep(vary={"seed": [1]}))

    async def main() -> list:
        events = hub.sweep_events(sweep)
        first = await anext(events)
        sweeps.cancel(sweep.id)
        sweeps.delete(sweep.id)
        return [first] + [e async for e in events]

    events = asyncio.run(main())
    assert [(e.kind, e.data if e.kind == "deleted" else None) for e in events] == [
        ("sweep", None),
        ("deleted", sweep.id),
    ]


# ------------------------------------------------------------------ bounded memory per reader
ROW = dict.fromkeys(METRIC_FIELDS, 0.5)
CURVES = [[0.25] * 15 for _ in range(4)]


def _running(store: Store, jobs: JobService, **config: int) -> tuple[Lease, str]:
    job, _ = jobs.create(CreateJob(config={"steps": 100_000, **config}))
    claimed = store.claim("w1", 600.0, job.id)
    assert claimed is not None
    return claimed[0], job.id


def _log(store: Store, lease: Lease, steps: range) -> None:
    for step in steps:
        store.record_progress(lease, step, ROW, CURVES)


async def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        await asyncio.sleep(0.01)


def test_a_stalled_reader_is_dropped_with_a_last_dropped_event(
    store: Store, jobs: JobService
) -> None:
    """A subscriber that stops reading while the poll publishes is let go once its buffer
    passes the bound: the buffer is freed at once, and its events end with ``dropped``
    naming the last step it was handed, for its client to resume from."""
    bound = 5_000  # a dozen rows, as the default renderer measures them
    hub = EventHub(store, max_streams=4, poll_s=0.01, max_pending_bytes=bound)
    lease, job_id = _running(store, jobs)

    async def main() -> tuple[list[Event], Subscription]:
        sub = hub.job_events(job_id)
        got = [await anext(sub)]  # state
        # Live (caught up, following the poll) once it waits for the poll's first update.
        first = asyncio.ensure_future(anext(sub))
        await _until(lambda: hub.polls >= 2, "poll")
        await asyncio.to_thread(_log, store, lease, range(1, 3))
        got.append(await first)  # metrics 1; then it reads nothing more
        await asyncio.to_thread(_log, store, lease, range(3, 200))
        await _until(sub.cut.is_set, "drop")
        assert sub.pending_bytes == 0  # the buffer was let go, not kept until it reads
        assert hub.watched == 0  # and the hub holds no reference to it
        got += [e async for e in sub]
        return got, sub

    got, sub = asyncio.run(main())
    assert [e.kind for e in got[:2]] == ["state", "metrics"]
    assert got[-1].kind == "dropped"
    sent = [e.id for e in got if e.kind == "metrics"]
    assert sent == list(range(1, len(sent) + 1)) and len(sent) < 20
    assert got[-1].data == {"reason": sub.reason, "last_event_id": sent[-1]}
    assert f"more than {bound} bytes" in sub.reason and "Last-Event-ID" in sub.reason


def test_a_replay_reads_the_history_a_page_at_a_time(
    store: Store, jobs: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-up of a long history reads the store a page at a time, pages sized from the
    job's rows (a few rows of wide curves per page), and hands every row on in order."""
    reads: list[tuple[int, int]] = []  # (limit, rows read)
    metrics_since = store.metrics_since

    def spy(job_id: str, since: int, limit: int, *, curves: bool = False) -> list:
        rows = metrics_since(job_id, since, limit, curves=curves)
        reads.append((limit, len(rows)))
        return rows

    monkeypatch.setattr(store, "metrics_since", spy)
    hub = EventHub(store, max_streams=4, poll_s=0.01)
    narrow_lease, narrow = _running(store, jobs)
    _log(store, narrow_lease, range(1, 601))
    wide_lease, wide = _running(store, jobs, n_points=1024)
    _log(store, wide_lease, range(1, 21))
    for lease in (narrow_lease, wide_lease):
        store.request_cancel(lease.job_id)

    async def replay(job_id: str) -> list[Event]:
        out = []
        async for event in hub.job_events(job_id):
            out.append(event)
            if len(out) == 1 + (600 if job_id == narrow else 20):
                return out
        return out

    for job_id, n, page in ((narrow, 600, PAGE_ROWS), (wide, 20, 3)):
        reads.clear()
        events = asyncio.run(replay(job_id))
        assert [e.id for e in events[1:]] == list(range(1, n + 1))
        assert reads and max(limit for limit, _ in reads) <= page, reads
        assert len(reads) >= n // page, reads


def test_subscribers_share_one_render_of_each_event(
    store: Store, jobs: JobService, sweeps: SweepService
) -> None:
    """An event of the shared poll is rendered once for all of its subscribers: a sweep's
    change once, not once per open stream; a job's logged step too."""
    rendered: list[tuple[str, int | None, str | None]] = []

    def render(event: Event) -> str:
        state = event.data[1][0].state.value if event.kind == "sweep" else None
        rendered.append((event.kind, event.id, state))
        return f"{event.kind}:{event.id}"

    hub = EventHub(store, max_streams=20, poll_s=0.01, sweep_poll_s=0.01)
    sweep, _ = sweeps.create(CreateSweep(vary={"seed": [1, 2]}))
    lease, job_id = _running(store, jobs)

    async def main() -> tuple[list[list[str]], list[list[str]]]:
        swept = [hub.sweep_events(sweep, render) for _ in range(8)]
        followed = [hub.job_events(job_id, 0, render) for _ in range(8)]
        for sub in swept + followed:
            (await anext(sub)).frame(render)
        nexts = [asyncio.ensure_future(_take(sub, 3)) for sub in followed]
        await _until(lambda: hub.polls >= 4, "polls")
        await asyncio.to_thread(_log, store, lease, range(1, 4))
        await asyncio.to_thread(sweeps.cancel, sweep.id)
        job_frames = [[e.frame(render) for e in got] for got in await asyncio.gather(*nexts)]
        sweep_frames = [[e.frame(render) async for e in sub] for sub in swept]
        return sweep_frames, job_frames

    sweep_frames, job_frames = asyncio.run(main())
    assert sweep_frames == [["sweep:None"]] * 8
    assert job_frames == [["metrics:1", "metrics:2", "metrics:3"]] * 8
    assert rendered.count(("sweep", None, "cancelled")) == 1
    assert [r for r in rendered if r[0] == "metrics"] == [("metrics", i, None) for i in (1, 2, 3)]
