"""Bounded memory per event-stream reader, at the edges: the response of a reader that reads
nothing is ended once the hub drops it (its page and buffer let go, its slot given back), and
the Python client takes a `dropped` frame as a cut stream and resumes after the last frame it
got. The hub's side (the byte bound, paged replays, one render per shared event) is in
tests/core/test_events.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from service.api.streams import event_stream, render
from service.core.events import EventHub
from service.core.jobs import JobService
from service.domain import METRIC_FIELDS, JobState
from service.domain.commands import CreateJob
from service.storage import LocalStorage
from service.store import Store
from tests.core.conftest import RecordingRunner
from tests.curvegan.test_twins import both, events_url, frame, job, metrics, resumed_from, stream

ROW = dict.fromkeys(METRIC_FIELDS, 0.5)
CURVES = [[0.25] * 15 for _ in range(4)]


def test_a_reader_that_reads_nothing_is_cut_and_let_go(store: Store, tmp_path: Path) -> None:
    """A client that never reads holds the stream's send: the hub drops it once its buffer
    passes the bound, and the response then stops that send, offers the `dropped` frame
    (its client is not reading: that send is given up too) and ends, so the stream's page,
    its subscription and its slot are all let go while the connection is still open."""
    jobs = JobService(store, RecordingRunner(), max_queued=5, storage=LocalStorage(tmp_path))
    job_id = jobs.create(CreateJob(config={"steps": 100_000}))[0].id
    claimed = store.claim("w1", 600.0, job_id)
    assert claimed is not None
    lease = claimed[0]
    for step in range(1, 4):
        store.record_progress(lease, step, ROW, CURVES)
    hub = EventHub(store, max_streams=2, poll_s=0.01, max_pending_bytes=4_000)
    offered: list[bytes] = []
    stalled = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        offered.append(message.get("body", b""))
        if len(offered) >= 3:  # the head and a frame went out; then the client stops reading
            stalled.set()
            await asyncio.Event().wait()

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never closes either
        return {}

    async def main() -> None:
        response = event_stream(hub.slots, hub.job_events(job_id, 0, render))
        call = asyncio.ensure_future(response({"type": "http"}, receive, send))
        await asyncio.wait_for(stalled.wait(), 30)
        assert hub.slots.open == 1
        for step in range(4, 200):  # the poll goes on publishing into its buffer
            await asyncio.to_thread(store.record_progress, lease, step, ROW, CURVES)
            if call.done():
                break
        await asyncio.wait_for(call, 30)  # the response ended, its client still silent

    asyncio.run(main())
    assert hub.slots.open == 0 and hub.watched == 0
    last = offered[-1].decode()
    assert last.startswith("event: dropped\n"), offered[-3:]
    data = json.loads(last.split("data: ", 1)[1])
    assert data["last_event_id"] in (1, 2, 3) and "fell behind" in data["reason"]
    assert store.get_job(job_id).state is JobState.RUNNING  # the job itself goes on


def test_the_client_resumes_after_a_dropped_frame() -> None:
    """`dropped` is a cut, not an event: neither client hands it on or reads past it (the
    server may leave the connection open), and both resume from the last frame they got."""

    def script() -> list[Any]:
        dropped = {"reason": "the reader fell behind", "last_event_id": 100}
        return [
            stream(frame("state", job("running")), metrics(100), frame("dropped", dropped),
                   metrics(150)),  # past the cut: never read
            stream(frame("state", job("running", 100)), metrics(200),
                   frame("state", job("succeeded", 200))),
        ]  # fmt: skip

    done, sent = both(script, "iter_events", "job_a")
    assert done[0] == "returned"
    assert [(e.type, e.id) for e in done[1]] == [
        ("state", None),
        ("metrics", "100"),
        ("state", None),
        ("metrics", "200"),
        ("state", None),
    ]
    assert [url for _, url, _, _ in sent] == [events_url()] * 2
    assert resumed_from(sent) == [None, "100"]
