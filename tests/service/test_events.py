"""GET /v1/jobs/{id}/events over real HTTP: a server-sent event stream per job."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import torch

from gan_engine import Trainer, checkpoint_from_bytes
from gan_engine.metrics import PREVIEW_CURVES
from tests.helpers import Server, poll

FINAL = {"succeeded", "failed", "cancelled"}
ROW_KEYS = {"step", "d_loss", "g_loss", "d_accuracy", "d_score", "in_band", "resid", "w1_a"}


@dataclass
class Event:
    event: str
    data: Any
    id: str | None = None
    received: float = field(default_factory=time.monotonic)


@dataclass
class Stream:
    status: int
    content_type: str
    events: list[Event]
    ended: bool  # the server closed the stream (rather than our deadline cutting it)
    raw: list[str]


def read_events(
    client: httpx.Client,
    job_id: str,
    *,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Stream:
    """Reads the stream until the server closes it or ``timeout`` passes; parses SSE frames."""
    events: list[Event] = []
    raw: list[str] = []
    deadline = time.monotonic() + timeout
    ended = False
    with client.stream(
        "GET",
        f"/v1/jobs/{job_id}/events",
        headers={"Accept": "text/event-stream", **(headers or {})},
        timeout=httpx.Timeout(timeout, read=min(timeout, 30.0)),
    ) as r:
        content_type = r.headers.get("content-type", "")
        if r.status_code != 200:
            r.read()
            return Stream(r.status_code, content_type, [], True, [r.text])
        name, data_lines, event_id = None, [], None
        try:
            for line in r.iter_lines():
                raw.append(line)
                if line == "":
                    if data_lines:
                        text = "\n".join(data_lines)
                        try:
                            data = json.loads(text)
                        except json.JSONDecodeError as exc:
                            raise AssertionError(f"event data is not JSON: {text!r}") from exc
                        ev = Event(name or "message", data, event_id)
                        events.append(ev)
                        if on_event is not None:
                            on_event(ev)
                    name, data_lines, event_id = None, [], None
                    if time.monotonic() > deadline:
                        break
                    continue
                if line.startswith(":"):  # a comment (keep-alive)
                    continue
                key, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "event":
                    name = value
                elif key == "data":
                    data_lines.append(value)
                elif key == "id":
                    event_id = value
                if time.monotonic() > deadline:
                    break
            else:
                ended = True
        except httpx.ReadTimeout:
            ended = False
    return Stream(200, content_type, events, ended, raw)


def create(client: httpx.Client, config: dict[str, Any]) -> dict:
    r = client.post("/v1/jobs", json={"config": config})
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    return r.json()


def check_metrics_event(ev: Event, steps: int) -> None:
    data = ev.data
    assert isinstance(data, dict), ev
    missing = (ROW_KEYS | {"state", "progress"}) - set(data)
    assert not missing, f"metrics event lacks {sorted(missing)}: {data}"
    assert data["state"] in {"queued", "running"} | FINAL, data
    assert 0.0 <= data["progress"] <= 1.0, data
    assert data["progress"] == pytest.approx(data["step"] / steps), data
    for key in ROW_KEYS - {"step"}:
        assert isinstance(data[key], (int, float)), data
    # A few curves of the job's evaluation batch, for a live figure.
    curves = data["curves"]
    assert len(curves) == PREVIEW_CURVES, data
    assert all(len(c) == 15 and all(math.isfinite(v) for v in c) for c in curves), curves


def test_events_of_a_job_from_queued_to_succeeded(mc: httpx.Client, module_server: Server) -> None:
    # Large batches: the job runs for about a second, several of the stream's 0.2 s polls,
    # so its running state is seen (the tutorial's batch trains 300 steps within one poll).
    job = create(mc, {"steps": 300, "log_every": 100, "batch_size": 1024})
    stream = read_events(mc, job["id"], timeout=60)
    log = module_server.log()[-3000:]
    assert stream.status == 200, stream.raw
    assert stream.content_type.startswith("text/event-stream"), stream.content_type
    assert stream.ended, f"stream did not end after the final state: {stream.events}\n{log}"
    events = stream.events
    assert events, f"no events: {stream.raw}"
    assert {e.event for e in events} <= {"state", "metrics"}, [e.event for e in events]

    # The first frame is a state event with the whole Job.
    first = events[0]
    assert first.event == "state", f"first event is {first.event}: {first.data}"
    assert first.data["id"] == job["id"] and "config" in first.data, first.data

    # The stream ends right after a final state event.
    last = events[-1]
    assert last.event == "state", f"last event is {last.event}: {last.data}"
    assert last.data["state"] == "succeeded", f"{last.data}\n{log}"
    assert last.data["step"] == 300 and last.data["progress"] == 1.0, last.data

    # State events: each a change, in lifecycle order.
    states = [e.data["state"] for e in events if e.event == "state"]
    order = ["queued", "running", "succeeded"]
    assert all(s in order for s in states), states
    assert states == sorted(states, key=order.index), f"states out of order: {states}"
    assert len(states) == len(set(states)), f"repeated state events: {states}"
    assert "running" in states or states[0] == "succeeded", states

    # A metrics event per logged step, ascending, each with state, step and progress.
    metrics = [e for e in events if e.event == "metrics"]
    assert [e.data["step"] for e in metrics] == [100, 200, 300], [e.data for e in metrics]
    for ev in metrics:
        check_metrics_event(ev, 300)

    # Its values are the metric history's (which stays without curves: a history of 10 000
    # rows is for charts, and would be ~6 MB with them).
    rows = mc.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    for ev, row in zip(metrics, rows, strict=True):
        assert "curves" not in row, row
        for key in ROW_KEYS:
            assert ev.data[key] == pytest.approx(row[key]), (key, ev.data, row)

    # The last frame's curves are the final generator's on the first latents of the job's
    # fixed evaluation batch: recomputed here from the job's final checkpoint.
    ckpt_id = last.data["latest_checkpoint"]
    ckpt = checkpoint_from_bytes(mc.get(f"/v1/checkpoints/{ckpt_id}/file").content)
    trainer = Trainer.from_checkpoint(ckpt)
    with torch.inference_mode():
        want = trainer.sampling_model()(trainer.eval_z[:PREVIEW_CURVES])
    got = torch.tensor(metrics[-1].data["curves"])
    assert torch.allclose(got, want, atol=2e-5), float((got - want).abs().max())


def test_events_of_a_finished_job_replay_and_end(mc: httpx.Client, wait_state) -> None:
    job = create(mc, {"steps": 200, "log_every": 50})
    done = wait_state(mc, job["id"], FINAL, timeout=60)
    assert done["state"] == "succeeded", done
    t0 = time.monotonic()
    stream = read_events(mc, job["id"], timeout=15)
    assert stream.ended, f"the stream of a finished job did not end: {stream.events}"
    assert time.monotonic() - t0 < 5, "the stream of a finished job took long to end"
    assert stream.events[-1].event == "state", stream.events[-1]
    assert stream.events[-1].data["state"] == "succeeded", stream.events[-1]
    metrics = [e for e in stream.events if e.event == "metrics"]
    assert [e.data["step"] for e in metrics] == [50, 100, 150, 200], [e.data for e in metrics]
    for ev in metrics:
        check_metrics_event(ev, 200)
    # docs/service-contract-notes.md: the first frame is a state event with the current Job,
    # the last a final state after all metrics; for a finished job both are that same Job.
    states = [e for e in stream.events if e.event == "state"]
    assert stream.events[0].event == "state", (
        f"first frame is {stream.events[0].event!r}, not 'state': "
        f"{[(e.event, e.data.get('step')) for e in stream.events]}"
    )
    assert len(states) == 2, f"a finished job opens and closes with its state: {states}"
    assert states[0].data == states[-1].data, states


def test_events_of_a_cancelled_job_end_with_cancelled(mc: httpx.Client) -> None:
    job = create(mc, {"steps": 1_000_000, "log_every": 50, "checkpoint_every": 0})
    cancelled_at: list[float] = []

    def cancel_after_first_metrics(ev: Event) -> None:
        if ev.event == "metrics" and not cancelled_at:
            r = mc.post(f"/v1/jobs/{job['id']}/cancel")
            assert r.status_code == 202, r.text
            cancelled_at.append(time.monotonic())

    try:
        stream = read_events(mc, job["id"], timeout=60, on_event=cancel_after_first_metrics)
    finally:
        mc.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled_at, f"no metrics event before the deadline: {stream.events}"
    assert stream.ended, f"stream did not end: {[e.event for e in stream.events][-5:]}"
    last = stream.events[-1]
    assert last.event == "state" and last.data["state"] == "cancelled", last
    assert last.received - cancelled_at[0] < 5, "the final state came long after the cancel"
    steps = [e.data["step"] for e in stream.events if e.event == "metrics"]
    assert steps == sorted(set(steps)), f"metrics steps not strictly ascending: {steps}"
    assert steps[-1] == last.data["step"], (steps, last.data)


def test_events_reconnect_with_last_event_id(mc: httpx.Client, wait_state) -> None:
    """Not in the issue: the service documents Last-Event-ID as resuming after that step."""
    job = create(mc, {"steps": 300, "log_every": 100})
    assert wait_state(mc, job["id"], FINAL, timeout=60)["state"] == "succeeded"
    full = read_events(mc, job["id"], timeout=15)
    ids = [e.id for e in full.events if e.event == "metrics"]
    assert ids == ["100", "200", "300"], ids
    again = read_events(mc, job["id"], timeout=15, headers={"Last-Event-ID": "100"})
    steps = [e.data["step"] for e in again.events if e.event == "metrics"]
    assert steps == [200, 300], steps


def test_events_of_unknown_job_is_404_json(mc: httpx.Client) -> None:
    r = mc.get("/v1/jobs/job_doesnotexist/events")
    assert r.status_code == 404, f"{r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body.get("error") == "not_found" and body.get("message"), body


def test_many_subscribers_share_one_poll_and_each_sees_every_step(
    mc: httpx.Client, module_server: Server
) -> None:
    # Large batches: the job trains for several seconds, so the streams overlap it.
    job = create(mc, {"steps": 4000, "log_every": 100, "seed": 21, "batch_size": 512})
    streams: list[Stream] = []
    watches_seen: list[float] = []

    def subscribe(delay: float) -> Stream:
        time.sleep(delay)  # some join at once, some while the shared poll already runs
        with module_server.client() as c:
            return read_events(c, job["id"], timeout=90)

    def metric(name: str) -> float:
        text = mc.get("/metrics").text
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{name} "))
        return float(line.split()[1])

    polls_before = metric("curvegan_event_store_polls_total")
    start = time.monotonic()
    with ThreadPoolExecutor(30) as pool:
        futures = [pool.submit(subscribe, 0.1 * (i % 15)) for i in range(30)]
        # Every subscriber in: 30 streams open, all fed by the one watch of the job.
        poll(lambda: metric("curvegan_event_streams"), lambda n: n >= 30, 30, "30 streams open")
        watches_seen.append(metric("curvegan_event_watches"))
        streams = [f.result() for f in futures]
    elapsed = time.monotonic() - start
    polls = metric("curvegan_event_store_polls_total") - polls_before
    assert watches_seen == [1.0], watches_seen
    # One poll every 0.2 s for the job, not one per stream (30 streams would make ~30x).
    assert polls <= elapsed / 0.2 + 5, f"{polls} polls in {elapsed:.1f}s for 30 streams"
    for s in streams:
        assert s.ended and s.events[0].event == "state", s.events[:1]
        assert s.events[-1].event == "state" and s.events[-1].data["state"] == "succeeded"
        steps = [int(e.data["step"]) for e in s.events if e.event == "metrics"]
        assert steps == list(range(100, 4001, 100)), steps
    assert metric("curvegan_event_watches") == 0.0, "the poll stops with its last subscriber"
