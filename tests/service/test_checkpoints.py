"""/v1/checkpoints over real HTTP: upload, list, get, file, delete, and every refused upload."""

from __future__ import annotations

import hashlib
import io
import pickle
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save as st_save

from gan_engine import Checkpoint, checkpoint_from_bytes
from tests.helpers import Server, assert_error, tiny_checkpoint

OCTET = {"content-type": "application/octet-stream"}


def upload(client: httpx.Client, data: bytes) -> httpx.Response:
    return client.post("/v1/checkpoints", content=data, headers=OCTET)


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    return tiny_checkpoint(seed=1, steps=50, log_every=25)


@pytest.fixture(scope="module")
def data(ckpt: Checkpoint) -> bytes:
    return ckpt.to_bytes()


def total(client: httpx.Client, **params: str) -> int:
    r = client.get("/v1/checkpoints", params=params)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0, value
    return ts


# ----------------------------------------------------------------------------- happy path


def test_upload_returns_checkpoint_record(mc: httpx.Client, data: bytes, ckpt: Checkpoint) -> None:
    r = upload(mc, data)
    assert r.status_code == 201, r.text
    body = r.json()
    expected_keys = {
        "id",
        "job_id",
        "step",
        "config",
        "metrics",
        "quality",
        "created_at",
        "size_bytes",
        "sha256",
        "source",
    }
    assert expected_keys <= set(body), body
    assert isinstance(body["id"], str) and body["id"]
    assert body["job_id"] is None
    assert body["step"] == 50
    assert body["config"] == ckpt.config.to_dict()
    assert body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["source"] == "upload"
    parse_ts(body["created_at"])
    assert ckpt.metrics is not None
    assert set(body["metrics"]) == {"d_loss", "g_loss", "d_accuracy", "d_score"}
    assert set(body["quality"]) == {"in_band", "resid", "w1_a"}
    for key, value in {**body["metrics"], **body["quality"]}.items():
        assert value == pytest.approx(ckpt.metrics[key], rel=1e-6, abs=1e-9), key


def test_list_get_file_delete(mc: httpx.Client, data: bytes) -> None:
    before = total(mc)
    created = upload(mc, data).json()
    cid = created["id"]

    listing = mc.get("/v1/checkpoints").json()
    assert listing["total"] == before + 1
    assert cid in [item["id"] for item in listing["items"]]
    # Uploads belong to no job: a job_id filter for some job does not list them.
    assert total(mc, job_id="no-such-job") == 0
    assert cid not in [
        i["id"] for i in mc.get("/v1/checkpoints", params={"job_id": "no-such-job"}).json()["items"]
    ]

    got = mc.get(f"/v1/checkpoints/{cid}")
    assert got.status_code == 200, got.text
    assert got.json() == created

    f = mc.get(f"/v1/checkpoints/{cid}/file")
    assert f.status_code == 200, f.text[:200]
    assert f.content == data
    assert hashlib.sha256(f.content).hexdigest() == created["sha256"]
    loaded = checkpoint_from_bytes(f.content)
    assert loaded.step == 50

    d = mc.delete(f"/v1/checkpoints/{cid}")
    assert d.status_code == 204, d.text
    assert d.content == b""
    assert_error(mc.get(f"/v1/checkpoints/{cid}"), 404, "not_found")
    assert_error(mc.get(f"/v1/checkpoints/{cid}/file"), 404, "not_found")
    assert_error(mc.delete(f"/v1/checkpoints/{cid}"), 404, "not_found")
    assert total(mc) == before


def test_two_uploads_of_the_same_file_are_two_records(mc: httpx.Client, data: bytes) -> None:
    a, b = upload(mc, data).json(), upload(mc, data).json()
    assert a["id"] != b["id"]
    assert a["sha256"] == b["sha256"]
    for cid in (a["id"], b["id"]):
        assert mc.delete(f"/v1/checkpoints/{cid}").status_code == 204


def test_list_is_newest_first_and_job_filter_for_training_checkpoints(
    mc: httpx.Client, data: bytes, wait_state: Callable[..., dict]
) -> None:
    first = upload(mc, data).json()["id"]
    second = upload(mc, data).json()["id"]
    items = [i["id"] for i in mc.get("/v1/checkpoints").json()["items"]]
    assert items.index(second) < items.index(first), items

    job = mc.post("/v1/jobs", json={"config": {"seed": 2, "steps": 20, "log_every": 10}})
    assert job.status_code == 202, job.text
    job = wait_state(mc, job.json()["id"], {"succeeded", "failed", "cancelled"}, timeout=60)
    assert job["state"] == "succeeded", job
    r = mc.get("/v1/checkpoints", params={"job_id": job["id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] >= 1
    assert all(i["job_id"] == job["id"] for i in body["items"])
    assert all(i["source"] == "training" for i in body["items"])
    assert job["latest_checkpoint"] in [i["id"] for i in body["items"]]
    assert first not in [i["id"] for i in body["items"]]

    # Deleting the (final) job keeps its checkpoints, still tagged with its id.
    assert mc.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert_error(mc.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
    kept = mc.get("/v1/checkpoints", params={"job_id": job["id"]}).json()
    assert kept["total"] == body["total"], kept
    got = mc.get(f"/v1/checkpoints/{job['latest_checkpoint']}")
    assert got.status_code == 200 and got.json()["job_id"] == job["id"], got.text
    assert mc.get(f"/v1/checkpoints/{job['latest_checkpoint']}/file").status_code == 200


def test_latest_checkpoint_of_a_running_job_cannot_be_deleted(
    mc: httpx.Client, wait_state: Callable[..., dict]
) -> None:
    # Only checkpoints asked for: the latest stays the latest while the test looks at it.
    cfg = {"seed": 3, "steps": 10_000_000, "log_every": 1_000_000, "checkpoint_every": 0}
    r = mc.post("/v1/jobs", json={"config": cfg})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    try:
        wait_state(mc, job_id, {"running"}, timeout=30)
        saved = mc.post(f"/v1/jobs/{job_id}/checkpoints")
        assert saved.status_code == 201, saved.text
        latest = saved.json()["id"]
        assert saved.json()["job_id"] == job_id and saved.json()["source"] == "training"
        assert mc.get(f"/v1/jobs/{job_id}").json()["latest_checkpoint"] == latest
        assert_error(mc.delete(f"/v1/checkpoints/{latest}"), 409, "conflict")
        assert mc.get(f"/v1/checkpoints/{latest}").status_code == 200
    finally:
        mc.post(f"/v1/jobs/{job_id}/cancel")
        wait_state(mc, job_id, {"succeeded", "failed", "cancelled"}, timeout=15)


def test_unknown_checkpoint_is_404(mc: httpx.Client) -> None:
    for r in (
        mc.get("/v1/checkpoints/does-not-exist"),
        mc.get("/v1/checkpoints/does-not-exist/file"),
        mc.delete("/v1/checkpoints/does-not-exist"),
    ):
        assert_error(r, 404, "not_found")


# ----------------------------------------------------------------------------- refused uploads


def _nan_weight(ckpt: Checkpoint) -> bytes:
    tensors = {k: v.clone() for k, v in ckpt.tensors.items()}
    tensors["g.hidden.weight"][0, 0] = float("nan")
    return Checkpoint(ckpt.config, ckpt.step, tensors, ckpt.metrics).to_bytes()


def _wrong_shape(ckpt: Checkpoint) -> bytes:
    tensors = dict(ckpt.tensors)
    tensors["g.out.weight"] = torch.zeros(7, 3)
    return Checkpoint(ckpt.config, ckpt.step, tensors, ckpt.metrics).to_bytes()


def _torch_pickle() -> bytes:
    buf = io.BytesIO()
    torch.save({"g.hidden.weight": torch.zeros(128, 5)}, buf)
    return buf.getvalue()


BAD_UPLOADS: dict[str, tuple[Callable[[bytes, Checkpoint], bytes], tuple[str, ...]]] = {
    # name: (build the body, words one of which the message should contain; () = any message)
    "garbage": (lambda d, c: random.Random(0).randbytes(4096), ()),
    "empty": (lambda d, c: b"", ()),
    "truncated": (lambda d, c: d[: len(d) // 2], ()),
    "truncated_header": (lambda d, c: d[:5], ()),
    "pickle": (lambda d, c: pickle.dumps({"g.hidden.weight": [[0.0] * 5] * 128}), ()),
    "torch_save": (lambda d, c: _torch_pickle(), ()),
    "safetensors_no_metadata": (lambda d, c: st_save({"w": torch.zeros(3)}), ("curvegan",)),
    "safetensors_foreign_metadata": (
        lambda d, c: st_save({"w": torch.zeros(3)}, metadata={"format": "pt"}),
        ("curvegan",),
    ),
    "nan_weight": (lambda d, c: _nan_weight(c), ("nan",)),
    "wrong_shape": (lambda d, c: _wrong_shape(c), ("g.out.weight",)),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_refused_upload_is_422_and_stores_nothing(
    mc: httpx.Client, module_server: Server, data: bytes, ckpt: Checkpoint, case: str
) -> None:
    build, words = BAD_UPLOADS[case]
    body = build(data, ckpt)
    before = total(mc)
    files_dir = module_server.data_dir / "files"
    files_before = sorted(files_dir.rglob("*")) if files_dir.exists() else []
    err = assert_error(upload(mc, body), 422)
    assert err.get("error") in ("invalid_checkpoint", "validation_error"), err
    if words:
        assert any(w in err["message"].lower() for w in words), err
    assert total(mc) == before
    files_after = sorted(files_dir.rglob("*")) if files_dir.exists() else []
    assert files_after == files_before, "a refused upload left a file behind"


def test_pickle_is_never_unpickled(mc: httpx.Client, tmp_path: Path) -> None:
    """A pickle whose loading would run code: refused, and the code never ran."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    before = total(mc)
    assert_error(upload(mc, pickle.dumps({"g.hidden.weight": Exploit()})), 422)
    assert not marker.exists()
    assert total(mc) == before


# ----------------------------------------------------------------------------- size limit


def test_upload_over_the_limit_is_413(
    make_app_client: Callable[..., httpx.Client], data: bytes
) -> None:
    """In process: the limit is the app's (its request gate), not the HTTP server's."""
    assert len(data) < 100_000  # the tutorial-sized checkpoint fits under the lowered limit
    c = make_app_client(max_upload_bytes=100_000, workers=False)
    ok = upload(c, data)
    assert ok.status_code == 201, ok.text
    before = total(c)

    big = data + b"\0" * (150_000 - len(data))
    err = assert_error(upload(c, big), 413, "payload_too_large")
    assert "100000" in err["message"].replace(",", "").replace("_", ""), err

    # Without a Content-Length (chunked transfer) the limit still holds.
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    r = c.post("/v1/checkpoints", content=chunks(), headers=OCTET)
    assert_error(r, 413, "payload_too_large")

    # The limit itself is allowed (then refused as not a checkpoint); one byte more is not.
    assert_error(upload(c, b"\0" * 100_000), 422)
    assert_error(upload(c, b"\0" * 100_001), 413, "payload_too_large")
    assert total(c) == before
    # The app still answers and its store too (it runs no worker: /readyz is 503 for that).
    assert c.get("/healthz").status_code == 200
    assert c.get("/readyz").json()["checks"]["store"] is True
