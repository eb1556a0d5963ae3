"""The sync Client against the real service on a real port: every endpoint with typed results,
the exception tree, and bad arguments refused before any request is sent."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from curvegan import (
    ApiError,
    AsyncClient,
    AuthError,
    Checkpoint,
    CheckpointList,
    Client,
    ConflictError,
    CurveganError,
    Event,
    Job,
    JobFailedError,
    JobList,
    MetricRow,
    NotFoundError,
    RetryPolicy,
    Samples,
    UnavailableError,
    UsageError,
    ValidationError,
)
from curvegan.models import LossMetrics, Quality
from tests.conftest import Server, free_port
from tests.curvegan.conftest import TINY, cancelling, recording_http
from tests.helpers import poll


@dataclasses.dataclass(frozen=True)
class Trained:
    created: Job
    final: Job
    requests: list[tuple[str, str]]  # what create_job + wait sent

    @property
    def checkpoint(self) -> str:
        assert self.final.latest_checkpoint is not None
        return self.final.latest_checkpoint


@pytest.fixture(scope="module")
def trained(shared_server: Server) -> Trained:
    """One tiny job, created and waited for by a client whose requests are recorded."""
    http, seen = recording_http(shared_server.url)
    with http, Client(http=http) as api:
        created = api.create_job(TINY, name="tiny")
        # poll_interval=30: were wait() polling instead of following events, it would be slow
        # and the recorded requests below would show it.
        final = api.wait(created.id, timeout=60, poll_interval=30)
    return Trained(created, final, list(seen))


# ----------------------------------------------------------------------------- jobs


def test_create_job_returns_a_typed_queued_job(trained: Trained) -> None:
    job = trained.created
    assert isinstance(job, Job)
    assert job.id and job.name == "tiny"
    assert job.state in {"queued", "running"} and not job.is_final
    assert (job.step, job.steps, job.progress) == (0, 200, 0.0)
    assert job.config["seed"] == 7 and job.config["steps"] == 200
    assert job.config["log_every"] == 100
    assert isinstance(job.created_at, datetime) and job.created_at.tzinfo is not None
    assert job.finished_at is None and job.latest_checkpoint is None and job.error is None


def test_wait_follows_the_event_stream_to_the_succeeded_job(trained: Trained) -> None:
    job, jid = trained.final, trained.created.id
    assert isinstance(job, Job) and job.id == jid
    assert job.state == "succeeded" and job.is_final
    assert (job.step, job.steps, job.progress) == (200, 200, 1.0)
    assert isinstance(job.metrics, LossMetrics) and isinstance(job.quality, Quality)
    assert job.started_at is not None and job.finished_at is not None
    assert job.created_at <= job.started_at <= job.finished_at
    assert job.latest_checkpoint and job.error is None
    # One look, the event stream until the final state, one look to read the result: no polling.
    assert trained.requests == [
        ("POST", "/v1/jobs"),
        ("GET", f"/v1/jobs/{jid}"),
        ("GET", f"/v1/jobs/{jid}/events"),
        ("GET", f"/v1/jobs/{jid}"),
    ]


def test_iter_events_of_a_finished_job_end_with_its_final_state(
    api: Client, trained: Trained
) -> None:
    jid = trained.created.id
    events = list(api.iter_events(jid))
    assert all(isinstance(e, Event) for e in events)
    assert {e.type for e in events} <= {"metrics", "state"}
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == [100, 200]
    assert [e.id for e in metrics] == ["100", "200"]
    assert metrics[-1].data["progress"] == 1.0
    last = events[-1]
    assert last.type == "state" and last.data["state"] == "succeeded" and last.data["id"] == jid
    # since_step skips what the caller has already seen
    later = list(api.iter_events(jid, since_step=100))
    assert [e.data["step"] for e in later if e.type == "metrics"] == [200]
    assert later[-1].type == "state"


def test_job_metrics_rows_are_typed_and_ascending(api: Client, trained: Trained) -> None:
    rows = api.job_metrics(trained.created.id)
    assert all(isinstance(r, MetricRow) for r in rows)
    assert [r.step for r in rows] == [100, 200]
    assert trained.final.metrics is not None
    assert rows[-1].d_loss == pytest.approx(trained.final.metrics.d_loss)
    assert [r.step for r in api.job_metrics(trained.created.id, since_step=100)] == [200]
    assert [r.step for r in api.job_metrics(trained.created.id, limit=1)] == [100]


def test_get_job_and_list_jobs_with_state_filter(api: Client, trained: Trained) -> None:
    jid = trained.created.id
    got = api.get_job(jid)
    assert isinstance(got, Job) and got.model_dump() == trained.final.model_dump()

    everything = api.list_jobs()
    assert isinstance(everything, JobList) and jid in {j.id for j in everything.items}
    assert everything.total == len(everything.items)

    succeeded = api.list_jobs(state="succeeded")
    assert jid in {j.id for j in succeeded.items}
    assert succeeded.items and all(j.state == "succeeded" for j in succeeded.items)
    for other in ("queued", "failed", "cancelled"):
        assert jid not in {j.id for j in api.list_jobs(state=other).items}

    page = api.list_jobs(limit=1)
    assert len(page.items) == 1 and page.total == everything.total


# ----------------------------------------------------------------------------- sampling


def test_sample_same_seed_gives_the_same_float32_curves(api: Client, trained: Trained) -> None:
    ck = trained.checkpoint
    a = api.sample(ck, 4, seed=11)
    b = api.sample(ck, n=4, seed=11)
    assert isinstance(a, Samples)
    assert isinstance(a.curves, np.ndarray)
    assert a.curves.dtype == np.float32 and a.curves.shape == (4, 15)
    assert np.isfinite(a.curves).all()
    np.testing.assert_array_equal(a.curves, b.curves)
    assert a.seed == 11 and a.checkpoint_id == ck
    assert len(a.x) == 15 and a.x[0] == pytest.approx(-1.0) and a.x[-1] == pytest.approx(1.0)
    assert not np.array_equal(api.sample(ck, 4, seed=12).curves, a.curves)


def test_sample_with_z_gives_one_curve_per_row(api: Client, trained: Trained) -> None:
    ck = trained.checkpoint
    z = np.zeros((2, 5), dtype=np.float32)
    z[1] = 0.5
    s = api.sample(ck, z=z)
    assert s.curves.shape == (2, 15) and s.curves.dtype == np.float32
    assert s.seed is None
    # the same latent rows as plain lists, with a matching n, draw the same curves
    again = api.sample(ck, n=2, z=[[0.0] * 5, [0.5] * 5])
    np.testing.assert_array_equal(again.curves, s.curves)
    # a row draws the same curve alone as in a batch (to float32 rounding: BLAS may sum
    # a batch of one in another order)
    one = api.sample(ck, z=[[0.0] * 5])
    np.testing.assert_allclose(one.curves[0], s.curves[0], rtol=1e-5, atol=1e-6)


def test_sample_job_draws_from_its_latest_checkpoint(api: Client, trained: Trained) -> None:
    by_job = api.sample_job(trained.created.id, 3, seed=5)
    by_ckpt = api.sample(trained.checkpoint, 3, seed=5)
    assert by_job.curves.shape == (3, 15) and by_job.seed == 5
    # The .npy answer names its checkpoint in a header: the job's latest.
    assert by_job.checkpoint_id == by_ckpt.checkpoint_id == trained.checkpoint
    np.testing.assert_array_equal(by_job.curves, by_ckpt.curves)


# ----------------------------------------------------------------------------- checkpoints


def test_download_checkpoint_as_bytes_and_to_a_path(
    api: Client, trained: Trained, tmp_path: Path
) -> None:
    ck = trained.checkpoint
    meta = api.get_checkpoint(ck)
    assert isinstance(meta, Checkpoint)
    assert (meta.id, meta.job_id, meta.step, meta.source) == (
        ck,
        trained.created.id,
        200,
        "training",
    )
    data = api.download_checkpoint(ck)
    assert isinstance(data, bytes) and len(data) == meta.size_bytes
    assert hashlib.sha256(data).hexdigest() == meta.sha256

    target = tmp_path / "ck.safetensors"
    written = api.download_checkpoint(ck, target)
    assert written == target and target.read_bytes() == data
    as_str = api.download_checkpoint(ck, str(tmp_path / "again.safetensors"))
    assert isinstance(as_str, Path) and as_str.read_bytes() == data

    listed = api.list_checkpoints(job_id=trained.created.id)
    assert isinstance(listed, CheckpointList) and [c.id for c in listed.items] == [ck]


def test_upload_round_trip_then_delete(api: Client, trained: Trained, tmp_path: Path) -> None:
    original = api.get_checkpoint(trained.checkpoint)
    data = api.download_checkpoint(original.id)
    assert isinstance(data, bytes)

    up = api.upload_checkpoint(data)
    assert isinstance(up, Checkpoint) and up.id != original.id
    assert (up.source, up.job_id, up.step) == ("upload", None, 200)
    assert (up.sha256, up.size_bytes) == (original.sha256, original.size_bytes)
    assert up.config == original.config
    assert api.download_checkpoint(up.id) == data

    path = tmp_path / "upload.safetensors"
    path.write_bytes(data)
    from_path = api.upload_checkpoint(path)
    from_str = api.upload_checkpoint(str(path))
    assert from_path.sha256 == from_str.sha256 == original.sha256

    for ck in (up, from_path, from_str):
        assert api.delete_checkpoint(ck.id) is None
        with pytest.raises(NotFoundError):
            api.get_checkpoint(ck.id)
        with pytest.raises(NotFoundError):
            api.delete_checkpoint(ck.id)
    assert api.get_checkpoint(original.id).sha256 == original.sha256  # untouched


# ----------------------------------------------------------------------------- a running job


def test_long_job_wait_timeout_events_checkpoint_cancel_and_delete(api: Client) -> None:
    with cancelling(api) as job:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=job.id):
            api.wait(job.id, timeout=0.5, poll_interval=0.1)
        assert time.monotonic() - t0 < 5.0
        assert not api.get_job(job.id).is_final

        live: list[Event] = []
        for event in api.iter_events(job.id):
            live.append(event)
            if event.type == "metrics" and event.data["step"] >= 200:
                break
        states = [e for e in live if e.type == "state"]
        assert states and states[0].data["id"] == job.id
        assert states[0].data["state"] in {"queued", "running"}
        steps = [e.data["step"] for e in live if e.type == "metrics"]
        assert steps == sorted(steps) and steps[-1] >= 200
        assert all(s % 100 == 0 for s in steps)

        saved = api.save_checkpoint(job.id)
        assert isinstance(saved, Checkpoint)
        assert (saved.job_id, saved.source) == (job.id, "training") and saved.step >= 200

        answer = api.cancel_job(job.id)
        assert isinstance(answer, Job) and answer.id == job.id
        assert answer.state in {"running", "cancelled"}
        final = api.wait(job.id, timeout=30)  # raise_on_failure=True: cancelled is no failure
        assert final.state == "cancelled" and final.is_final and final.error is None
        assert list(api.iter_events(job.id))[-1].data["state"] == "cancelled"
        with pytest.raises(ConflictError):
            api.save_checkpoint(job.id)

        assert api.delete_job(job.id) is None
        with pytest.raises(NotFoundError):
            api.get_job(job.id)
        # deleting a job keeps its checkpoints
        kept = api.list_checkpoints(job_id=job.id)
        assert saved.id in {c.id for c in kept.items}
        assert all(c.job_id == job.id for c in kept.items)


def test_failed_job_makes_wait_raise_job_failed_error(api: Client) -> None:
    pytest.importorskip("torch")
    from gan_engine import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(seed=1, steps=20, log_every=10))
    trainer.run()
    ckpt = trainer.checkpoint()
    # D's weights: a G this huge is refused at upload (its curves are not finite).
    blown = {k: v * 1e30 if k.startswith("d.") else v for k, v in ckpt.tensors.items()}
    bad = api.upload_checkpoint(dataclasses.replace(ckpt, tensors=blown).to_bytes())
    assert (bad.source, bad.step) == ("upload", 20)

    job = api.create_job(config={"steps": 100, "log_every": 10}, resume_from=bad.id)
    assert job.resumed_from == bad.id
    with pytest.raises(JobFailedError) as info:
        api.wait(job.id, timeout=60)
    assert isinstance(info.value, CurveganError)
    failed = info.value.job
    assert isinstance(failed, Job) and failed.id == job.id and failed.state == "failed"
    assert failed.error and "diverged" in failed.error
    assert failed.error in str(info.value)
    # asked not to raise, wait hands the failed job back
    assert api.wait(job.id, raise_on_failure=False).state == "failed"


# ----------------------------------------------------------------------------- errors

UNKNOWN_CALLS: dict[str, Callable[[Client], Any]] = {
    "get_job": lambda a: a.get_job("job_nope"),
    "job_metrics": lambda a: a.job_metrics("job_nope"),
    "iter_events": lambda a: list(a.iter_events("job_nope")),
    "wait": lambda a: a.wait("job_nope", timeout=5),
    "cancel_job": lambda a: a.cancel_job("job_nope"),
    "delete_job": lambda a: a.delete_job("job_nope"),
    "save_checkpoint": lambda a: a.save_checkpoint("job_nope"),
    "sample_job": lambda a: a.sample_job("job_nope", 1),
    "get_checkpoint": lambda a: a.get_checkpoint("ck_nope"),
    "download_checkpoint": lambda a: a.download_checkpoint("ck_nope"),
    "delete_checkpoint": lambda a: a.delete_checkpoint("ck_nope"),
    "sample": lambda a: a.sample("ck_nope", 1),
    "resume_from": lambda a: a.create_job({"steps": 300}, resume_from="ck_nope"),
}


@pytest.mark.parametrize("call", UNKNOWN_CALLS.values(), ids=UNKNOWN_CALLS.keys())
def test_unknown_ids_raise_not_found(api: Client, call: Callable[[Client], Any]) -> None:
    with pytest.raises(NotFoundError) as info:
        call(api)
    err = info.value
    assert isinstance(err, ApiError) and isinstance(err, CurveganError)
    assert err.status == 404 and err.code == "not_found"
    assert "_nope" in err.message


def test_validation_error_names_the_field_and_the_range(api: Client, trained: Trained) -> None:
    before = api.list_jobs().total
    with pytest.raises(ValidationError) as info:
        api.create_job({"steps": -1})
    err = info.value
    assert (err.status, err.code, err.field) == (422, "validation_error", "config.steps")
    assert "[1, 10000000]" in err.message and "-1" in err.message
    assert api.list_jobs().total == before  # nothing was queued

    with pytest.raises(ValidationError) as info:
        api.sample(trained.checkpoint, n=100_001)
    assert info.value.field == "n" and "100000" in info.value.message


def test_create_job_with_a_preset(api: Client) -> None:
    job = api.create_job({"steps": 100, "seed": 2}, name="preset", preset="recommended")
    assert job.config["lr_schedule"] == "linear" and job.config["batch_size"] == 128
    assert (job.config["steps"], job.config["seed"]) == (100, 2)
    assert api.wait(job.id, timeout=60).state == "succeeded"
    before = api.list_jobs().total
    with pytest.raises(ValidationError) as info:
        api.create_job(preset="fastest")
    assert info.value.field == "preset" and "recommended" in info.value.message
    assert api.list_jobs().total == before


def test_cancelling_a_finished_job_is_a_conflict(api: Client, trained: Trained) -> None:
    with pytest.raises(ConflictError) as info:
        api.cancel_job(trained.created.id)
    assert (info.value.status, info.value.code) == (409, "conflict")
    assert "succeeded" in info.value.message
    assert api.get_job(trained.created.id).state == "succeeded"


def test_api_key_missing_or_wrong_is_an_auth_error(make_server: Callable[..., Server]) -> None:
    server = make_server(api_key="k")
    for key in (None, "wrong"):
        with Client(server.url, api_key=key) as anonymous, pytest.raises(AuthError) as info:
            anonymous.list_jobs()
        assert (info.value.status, info.value.code) == (401, "unauthorized")
        assert isinstance(info.value, ApiError)
    with Client(server.url, api_key="k") as authorised:
        assert authorised.list_jobs().total == 0
        assert authorised.list_checkpoints().total == 0


BAD_CALLS: dict[str, Callable[[Client], Any]] = {
    "sample n=0": lambda a: a.sample("ck_x", n=0),
    "sample n='3'": lambda a: a.sample("ck_x", n="3"),
    "sample seed=-1": lambda a: a.sample("ck_x", 3, seed=-1),
    "sample seed=2**63": lambda a: a.sample("ck_x", 3, seed=2**63),
    "sample seed=True": lambda a: a.sample("ck_x", 3, seed=True),
    "sample without n or z": lambda a: a.sample("ck_x"),
    "sample z and n disagree": lambda a: a.sample("ck_x", n=3, z=[[0.0] * 5] * 2),
    "sample z empty": lambda a: a.sample("ck_x", z=[]),
    "sample z not rows": lambda a: a.sample("ck_x", z=[1.0, 2.0]),
    "sample_job n=0": lambda a: a.sample_job("job_x", 0),
    "get_job ../x": lambda a: a.get_job("../x"),
    "get_job int": lambda a: a.get_job(123),
    "get_job empty": lambda a: a.get_job(""),
    "delete_job ../x": lambda a: a.delete_job("../x"),
    "cancel_job a/b": lambda a: a.cancel_job("a/b"),
    "sample_job ../x": lambda a: a.sample_job("../x", 1),
    "download ../../etc/passwd": lambda a: a.download_checkpoint("../../etc/passwd"),
    "delete_checkpoint a/b": lambda a: a.delete_checkpoint("a/b"),
    "list_jobs state=bogus": lambda a: a.list_jobs(state="bogus"),
    "list_jobs limit=0": lambda a: a.list_jobs(limit=0),
    "list_jobs limit=1001": lambda a: a.list_jobs(limit=1001),
    "list_jobs offset=-1": lambda a: a.list_jobs(offset=-1),
    "list_checkpoints limit=0": lambda a: a.list_checkpoints(limit=0),
    "list_checkpoints job_id ../x": lambda a: a.list_checkpoints(job_id="../x"),
    "job_metrics since_step=-1": lambda a: a.job_metrics("job_x", since_step=-1),
    "job_metrics limit=0": lambda a: a.job_metrics("job_x", limit=0),
    "iter_events since_step=-1": lambda a: next(a.iter_events("job_x", since_step=-1)),
    "wait timeout=0": lambda a: a.wait("job_x", timeout=0),
    "wait timeout=-1": lambda a: a.wait("job_x", timeout=-1),
    "create_job config list": lambda a: a.create_job([("steps", 1)]),
    "create_job resume_from ../x": lambda a: a.create_job(resume_from="../x"),
    "create_job long name": lambda a: a.create_job(name="x" * 201),
    "create_job empty preset": lambda a: a.create_job(preset=""),
    "upload empty bytes": lambda a: a.upload_checkpoint(b""),
    "upload missing file": lambda a: a.upload_checkpoint(Path("/nonexistent/ck.safetensors")),
    "checkpoint_figure gif": lambda a: a.checkpoint_figure("ck_x", "gif"),
    "checkpoint_figure n=0": lambda a: a.checkpoint_figure("ck_x", n=0),
    "checkpoint_figure n=65": lambda a: a.checkpoint_figure("ck_x", n=65),
    "job_figure width=100": lambda a: a.job_figure("job_x", width=100),
    "job_figure ../x": lambda a: a.job_figure("../x"),
}


@pytest.fixture
def recorded(shared_server: Server) -> Iterator[tuple[Client, list[tuple[str, str]]]]:
    http, seen = recording_http(shared_server.url)
    with http, Client(http=http) as api:
        yield api, seen


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_arguments_raise_usage_error_before_any_request(
    recorded: tuple[Client, list[tuple[str, str]]], call: Callable[[Client], Any]
) -> None:
    api, seen = recorded
    with pytest.raises(UsageError) as info:
        call(api)
    assert isinstance(info.value, ValueError) and isinstance(info.value, CurveganError)
    assert seen == []


def test_the_recording_hook_sees_requests_and_injected_http_stays_open(
    recorded: tuple[Client, list[tuple[str, str]]],
) -> None:
    api, seen = recorded
    api.list_jobs(state="succeeded")
    assert seen == [("GET", "/v1/jobs")]
    api.close()
    assert not api.http.is_closed  # the caller's httpx.Client is the caller's to close
    assert api.list_checkpoints().total >= 0
    own = Client(str(api.http.base_url))
    own.close()
    assert own.http.is_closed


@pytest.mark.parametrize("bad_id", [".", ".."])
@pytest.mark.parametrize("method", ["get_job", "delete_job", "get_checkpoint", "delete_checkpoint"])
def test_dot_ids_are_refused_before_any_request(
    recorded: tuple[Client, list[tuple[str, str]]], method: str, bad_id: str
) -> None:
    api, seen = recorded
    try:
        with pytest.raises(UsageError):
            getattr(api, method)(bad_id)
    finally:
        assert seen == []


def test_unreachable_server_is_unavailable_after_retries() -> None:
    port = free_port()  # nothing listens here
    seen: list[tuple[str, str]] = []
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=5.0,
        event_hooks={"request": [lambda r: seen.append((r.method, r.url.path))]},
    )
    with http, Client(http=http, retry=RetryPolicy(retries=1, backoff=0.01)) as api:
        t0 = time.monotonic()
        for call in (
            lambda: api.get_job("job_x"),
            # a connection that never opened sent nothing: even a non-idempotent call retries
            lambda: api.cancel_job("job_x"),
            lambda: api.create_job(TINY),
        ):
            seen.clear()
            with pytest.raises(UnavailableError) as info:
                call()
            assert not isinstance(info.value, ApiError)
            assert str(port) in str(info.value)
            assert len(seen) == 2  # the first try and one retry
        with pytest.raises(UnavailableError):
            list(api.iter_events("job_x"))
        with pytest.raises(UnavailableError):
            api.wait("job_x", timeout=5)
        assert api.health() is False
        assert time.monotonic() - t0 < 10.0


def test_timeouts_hold_on_a_queued_job_whose_stream_only_keeps_alive(
    make_server: Callable[..., Server],
) -> None:
    # One worker slot: a long job holds it and a second job stays queued, so its event
    # stream sends one state frame and then nothing but keep-alives.
    server = make_server(max_concurrent_jobs="1")
    with Client(server.url) as api, cancelling(api) as running, cancelling(api) as queued:
        # The slot is taken once the first job runs (a busy machine may take seconds to warm
        # the worker): from then on the second stays queued.
        poll(lambda: api.get_job(running.id).state, "running".__eq__, 60, "the first job running")
        assert api.get_job(queued.id).state == "queued"
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=queued.id):
            api.wait(queued.id, timeout=1.0, poll_interval=0.2)
        waited = time.monotonic() - t0
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            list(api.iter_events(queued.id, timeout=1.0))
        iterated = time.monotonic() - t0

        async def async_wait() -> float:
            async with AsyncClient(server.url) as aapi:
                t0 = time.monotonic()
                with pytest.raises(TimeoutError, match=queued.id):
                    await aapi.wait(queued.id, timeout=1.0, poll_interval=0.2)
                return time.monotonic() - t0

        waited_async = asyncio.run(async_wait())
        assert api.get_job(running.id).state == "running"
    # Without the fix these blocked until the job started (never, here): a bound far past the
    # 1 s timeout, so that only a hang fails it, not a busy machine.
    assert max(waited, iterated, waited_async) < 15.0, (waited, iterated, waited_async)
