"""The event hub in-process: a job's and a sweep's events as domain records, one shared poll
per job or sweep whatever the number of subscribers."""

from __future__ import annotations

import asyncio

from service.core.events import EventHub
from service.core.jobs import JobService
from service.core.sweeps import SweepService
from service.domain import JobState
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
