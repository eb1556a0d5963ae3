"""Hostile checkpoint uploads through one real server: crafted safetensors files, metadata of
every wrong type and size, pickles and zips posing as checkpoints, a wrong API key. Each is a
clear 4xx JSON error naming what is wrong, changes nothing on disk or in the listing, and
leaves the server healthy. Rows odd in the store (an older version, a hand edit) are listed."""

from __future__ import annotations

import io
import json
import pickle
import sqlite3
import struct
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import torch
from safetensors.torch import save as st_save

from gan_engine import Checkpoint, TrainConfig
from tests.conftest import InProcessApp, in_process_app
from tests.helpers import tiny_checkpoint, wait_for_state

KEY = "hostile-suite-key"
OCTET = {"content-type": "application/octet-stream"}
Build = Callable[[Checkpoint, bytes], bytes]


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    ck = tiny_checkpoint(seed=5, steps=4, log_every=2, checkpoint_every=0, hidden=16)
    assert ck.metrics is not None and ck.step == 4
    return ck


@pytest.fixture(scope="module")
def data(ckpt: Checkpoint) -> bytes:
    return ckpt.to_bytes()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """The app in this process, with an API key and one worker: every upload here is judged
    by the app (its key check, its parsing of the file), which needs no HTTP server."""
    data_dir = tmp_path_factory.mktemp("hostile-uploads-app") / "data"
    with in_process_app(data_dir, api_key=KEY, max_concurrent_jobs=1) as app:
        yield app


@pytest.fixture
def api(module_server: InProcessApp) -> Iterator[httpx.Client]:
    with module_server.client(headers={"authorization": f"Bearer {KEY}"}) as c:
        yield c


# ----------------------------------------------------------------------------- crafting


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def assemble(raw_header: bytes, body: bytes) -> bytes:
    raw_header += b" " * (-len(raw_header) % 8)
    return struct.pack("<Q", len(raw_header)) + raw_header + body


def header_edit(edit: Callable[[dict[str, Any]], object]) -> Build:
    """The real file with its JSON header edited (tensor offsets are relative to its end)."""

    def build(_: Checkpoint, data: bytes) -> bytes:
        header, body = split(data)
        edit(header)
        return assemble(json.dumps(header).encode(), body)

    return build


NULL = object()  # a JSON null (None removes the key)


def meta(**changes: object) -> Build:
    """The real file with metadata values replaced, of any JSON type (None removes one)."""

    def edit(header: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                header["__metadata__"].pop(key, None)
            else:
                header["__metadata__"][key] = None if value is NULL else value

    return header_edit(edit)


def raw_header(make: Callable[[str], str]) -> Build:
    """The real body behind a header whose JSON text ``make`` rewrites."""

    def build(_: Checkpoint, data: bytes) -> bytes:
        header, body = split(data)
        return assemble(make(json.dumps(header)).encode(), body)

    return build


def metrics(**changes: object) -> Build:
    """The real metrics with some replaced (None removes one; a str is raw JSON text)."""

    def build(ck: Checkpoint, data: bytes) -> bytes:
        values: dict[str, object] = dict(ck.metrics or {})
        raw = {k: v for k, v in changes.items() if isinstance(v, str)}
        for key, value in changes.items():
            if value is None:
                values.pop(key)
            elif key not in raw:
                values[key] = value
        text = json.dumps({**values, **{k: f"<{k}>" for k in raw}})
        for key, value in raw.items():
            text = text.replace(f'"<{key}>"', value)
        return meta(metrics=text)(ck, data)

    return build


def config(**changes: object) -> Build:
    def build(ck: Checkpoint, data: bytes) -> bytes:
        return meta(config=json.dumps({**ck.config.to_dict(), **changes}))(ck, data)

    return build


def tensors(name: str, value: Callable[[torch.Tensor], torch.Tensor | None]) -> Build:
    """The checkpoint saved by safetensors itself with one tensor changed (None removes it)."""

    def build(ck: Checkpoint, data: bytes) -> bytes:
        header, _ = split(data)
        ts = {k: v.contiguous() for k, v in ck.tensors.items()}
        new = value(ts.get(name, torch.zeros(1)))
        if new is None:
            del ts[name]
        else:
            ts[name] = new.contiguous()
        return st_save(ts, metadata=header["__metadata__"])

    return build


def offsets(name: str, make: Callable[[list[int]], list[int]]) -> Build:
    def edit(header: dict[str, Any]) -> None:
        header[name]["data_offsets"] = make(header[name]["data_offsets"])

    return header_edit(edit)


def poked(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def change(t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        t.view(-1)[0] = value
        return t

    return change


def generator_times(factor: float) -> Build:
    """Every G weight times ``factor``: finite tensors, so only the generator's probe can tell."""

    def build(ck: Checkpoint, _: bytes) -> bytes:
        ts = {k: v * factor if k.startswith("g.") else v for k, v in ck.tensors.items()}
        return Checkpoint(ck.config, ck.step, ts, ck.metrics).to_bytes()

    return build


def torch_save(ck: Checkpoint, _: bytes) -> bytes:
    buf = io.BytesIO()
    torch.save(dict(ck.tensors), buf)
    return buf.getvalue()


def a_zip(_: Checkpoint, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("checkpoint.safetensors", data)
    return buf.getvalue()


NESTED = "[" * 50_000 + "]" * 50_000
BIG = "1" * 400
W = "g.hidden.weight"  # a weight every config has

# name: (build the body, words one of which the message names, the error's field or a prefix)
CASES: dict[str, tuple[Build, tuple[str, ...], str]] = {
    # --- the 8-byte header length and the header's JSON
    "header_len_huge": (lambda c, d: struct.pack("<Q", 2**64 - 1) + d[8:], ("header",), "header"),
    "header_len_zero": (lambda c, d: struct.pack("<Q", 0) + d[8:], ("header",), "header"),
    "header_len_beyond_file": (
        lambda c, d: struct.pack("<Q", len(d)) + d[8:],
        ("exceeds the file",),
        "header",
    ),
    "header_too_large": (
        raw_header(lambda h: h + " " * 300_000),
        ("header length",),
        "header",
    ),
    "header_not_json": (lambda c, d: assemble(b"{not json", split(d)[1]), ("json",), "header"),
    "header_not_utf8": (lambda c, d: assemble(b'{"\xff": 1}', split(d)[1]), ("json",), "header"),
    "header_not_object": (lambda c, d: assemble(b"[1, 2]", split(d)[1]), ("object",), "header"),
    "header_deeply_nested": (
        raw_header(lambda h: h[:-1] + f', "deep": {NESTED}}}'),
        ("nested",),
        "header",
    ),
    "header_no_metadata": (header_edit(lambda h: h.pop("__metadata__")), ("metadata",), "metadata"),
    "duplicate_tensor_key": (
        raw_header(lambda h: h[:-1] + f', "{W}": {json.dumps(json.loads(h)[W])}}}'),
        ("duplicate", W),
        "header",
    ),
    "duplicate_metadata": (
        raw_header(lambda h: h[:-1] + ', "__metadata__": {"format": "curvegan.checkpoint"}}'),
        ("duplicate",),
        "header",
    ),
    "duplicate_metadata_key": (
        raw_header(lambda h: h.replace('"step": "4"', '"step": "4", "step": "0"')),
        ("duplicate", "step"),
        "header",
    ),
    # --- tensor offsets and descriptions
    "offsets_overlapping": (offsets(W, lambda o: [o[0] + 4, o[1] + 4]), ("offset",), "tensors"),
    "offsets_out_of_range": (offsets(W, lambda o: [o[0], o[1] + 10**6]), ("corrupt",), "tensors"),
    "offsets_reversed": (offsets(W, lambda o: [o[1], o[0]]), ("corrupt",), "tensors"),
    "offsets_negative": (offsets(W, lambda o: [-8, o[1]]), ("corrupt",), "tensors"),
    "offsets_not_numbers": (offsets(W, lambda o: ["a", "b"]), ("corrupt",), "tensors"),
    "data_not_covered": (lambda c, d: d + b"\0" * 64, ("covered", "corrupt"), "tensors"),
    "data_truncated": (lambda c, d: d[:-64], ("corrupt",), "tensors"),
    "dtype_unknown": (header_edit(lambda h: h[W].update(dtype="F99")), ("corrupt",), "tensors"),
    "shape_huge": (
        header_edit(lambda h: h[W].update(shape=[2**40, 2**40])),
        ("corrupt",),
        "tensors",
    ),
    # --- tensors: names, dtypes, shapes, values
    "dtype_f64": (tensors(W, lambda t: t.double()), ("float64",), f"tensors.{W}"),
    "dtype_f16": (tensors(W, lambda t: t.half()), ("float16",), f"tensors.{W}"),
    "dtype_i64": (tensors(W, lambda t: t.long()), ("int64",), f"tensors.{W}"),
    "dtype_bool": (tensors(W, lambda t: t > 0), ("bool",), f"tensors.{W}"),
    "wrong_shape": (tensors(W, lambda t: torch.zeros(3, 3)), (W,), f"tensors.{W}"),
    "extra_tensor": (
        tensors("extra.weight", lambda t: torch.zeros(2)),
        ("extra",),
        "tensors.extra",
    ),
    "missing_tensor": (
        tensors("d.out.bias", lambda t: None),
        ("d.out.bias",),
        "tensors.d.out.bias",
    ),
    "nan_weight": (tensors(W, poked(float("nan"))), ("nan",), f"tensors.{W}"),
    "inf_adam_state": (
        tensors("opt_g.0.exp_avg", poked(float("inf"))),
        ("infinite",),
        "tensors.opt_g.0.exp_avg",
    ),
    "negative_adam_second_moment": (
        tensors("opt_d.0.exp_avg_sq", poked(-1.0)),
        ("negative",),
        "tensors.opt_d.0.exp_avg_sq",
    ),
    "adam_step_disagrees": (
        tensors("opt_g.0.step", lambda t: torch.tensor(1e9)),
        ("opt_g.0.step",),
        "tensors.opt_g.0.step",
    ),
    "rng_state_invalid": (
        tensors("rng.train", lambda t: torch.zeros_like(t)),
        ("rng.train",),
        "tensors.rng.train",
    ),
    # --- finite weights whose curves are not: ~1e30 per layer overflows float32
    "generator_weights_huge": (generator_times(1e30), ("probe batch",), "body"),
    # --- metadata of every wrong type and size
    "meta_step_number": (meta(step=4), ("strings",), "metadata.step"),
    "meta_config_object": (
        lambda c, d: meta(config=c.config.to_dict())(c, d),
        ("strings",),
        "metadata.config",
    ),
    "meta_metrics_list": (meta(metrics=[1, 2]), ("strings",), "metadata.metrics"),
    "meta_format_null": (meta(format=NULL), ("strings",), "metadata.format"),
    "meta_format_version_number": (meta(format_version=1), ("strings",), "metadata.format_version"),
    "meta_value_nested": (meta(note={"a": [1, {"b": 2}]}), ("strings",), "metadata.note"),
    "meta_unknown_key": (meta(note="hello"), ("unknown", "note"), "metadata"),
    "meta_huge_config": (meta(config="x" * 100_000), ("config",), "metadata.config"),
    "meta_huge_metrics": (meta(metrics=" " * 5_000), ("metrics",), "metadata.metrics"),
    "meta_huge_step": (meta(step=BIG), ("step",), "metadata.step"),
    "format_missing": (meta(format=None), ("format",), "metadata.format"),
    "format_other": (meta(format="pt"), ("format",), "metadata.format"),
    "format_version_2": (meta(format_version="2"), ("format_version",), "metadata.format_version"),
    "format_version_missing": (
        meta(format_version=None),
        ("format_version",),
        "metadata.format_version",
    ),
    # --- step: bounded and consistent with the config
    "step_2_63": (meta(step=str(2**63)), ("step",), "metadata.step"),
    "step_negative": (meta(step="-1"), ("step",), "metadata.step"),
    "step_beyond_steps": (meta(step="5"), ("step", "steps"), "metadata.step"),
    "step_not_digits": (meta(step="1e3"), ("step",), "metadata.step"),
    "step_padded": (meta(step=" 4"), ("step",), "metadata.step"),
    "step_leading_zero": (meta(step="04"), ("step",), "metadata.step"),
    "step_minus_zero": (meta(step="-0"), ("step",), "metadata.step"),
    "step_other_digits": (meta(step="\u0664"), ("step",), "metadata.step"),
    "step_missing": (meta(step=None), ("step",), "metadata.step"),
    # --- config: JSON, then TrainConfig's validation
    "config_not_json": (meta(config="{nope"), ("json",), "metadata.config"),
    "config_not_object": (meta(config='"tutorial"'), ("object",), "metadata.config"),
    "config_nested": (
        meta(config=NESTED[:5_000] + NESTED[-5_000:]),
        ("nested", "config"),
        "metadata.config",
    ),
    "config_duplicate_key": (
        lambda c, d: meta(config=json.dumps(c.config.to_dict())[:-1] + ', "steps": 9}')(c, d),
        ("duplicate",),
        "metadata.config",
    ),
    "config_400_digits": (
        lambda c, d: meta(config='{"steps": ' + BIG + "}")(c, d),
        ("steps",),
        "metadata.config.steps",
    ),
    "config_unknown_field": (config(epochs=3), ("epochs",), "metadata.config.epochs"),
    "config_bad_value": (config(lr_g=-1), ("lr_g",), "metadata.config.lr_g"),
    "config_huge_value": (config(loss="x" * 10_000), ("loss",), "metadata.config.loss"),
    "config_no_seed": (config(seed=None), ("seed",), "metadata.config.seed"),
    "config_disagrees_with_tensors": (config(hidden=32), ("needs",), "tensors"),
    "config_missing": (meta(config=None), ("config",), "metadata.config"),
    # --- metrics: all or none of the known names, finite, in range
    "metrics_only_d_loss": (
        lambda c, d: meta(metrics=json.dumps({"d_loss": 1.0}))(c, d),
        ("partial",),
        "metadata.metrics",
    ),
    "metrics_quality_without_resid": (
        metrics(resid=None),
        ("partial", "resid"),
        "metadata.metrics.resid",
    ),
    "metrics_unknown_name": (metrics(fid=1.0), ("unknown", "fid"), "metadata.metrics.fid"),
    "metrics_nan": (metrics(w1_a=float("nan")), ("w1_a",), "metadata.metrics.w1_a"),
    "metrics_inf": (metrics(resid=float("inf")), ("resid",), "metadata.metrics.resid"),
    "metrics_minus_inf": (metrics(g_loss=float("-inf")), ("g_loss",), "metadata.metrics.g_loss"),
    "metrics_400_digits": (metrics(d_loss=BIG), ("d_loss",), "metadata.metrics.d_loss"),
    "metrics_400_digit_float": (metrics(resid=BIG + ".5"), ("resid",), "metadata.metrics.resid"),
    "metrics_1e400": (metrics(w1_a="1e400"), ("w1_a",), "metadata.metrics.w1_a"),
    "metrics_duplicate_name": (
        lambda c, d: meta(metrics=json.dumps(c.metrics)[:-1] + ', "d_loss": 0.5}')(c, d),
        ("duplicate", "d_loss"),
        "metadata.metrics",
    ),
    "metrics_string": (metrics(d_loss='"low"'), ("d_loss",), "metadata.metrics.d_loss"),
    "metrics_nested": (metrics(g_loss='{"a": [1]}'), ("g_loss",), "metadata.metrics.g_loss"),
    "metrics_bool": (metrics(in_band=True), ("in_band",), "metadata.metrics.in_band"),
    "metrics_out_of_range": (
        metrics(d_accuracy=1.5),
        ("d_accuracy",),
        "metadata.metrics.d_accuracy",
    ),
    "metrics_negative_distance": (metrics(w1_a=-0.1), ("w1_a",), "metadata.metrics.w1_a"),
    "metrics_not_object": (meta(metrics="[1, 2]"), ("metrics",), "metadata.metrics"),
    "metrics_not_json": (meta(metrics="{bad"), ("json",), "metadata.metrics"),
    # --- not safetensors at all
    "empty_body": (lambda c, d: b"", ("empty",), "body"),
    "pickle": (lambda c, d: pickle.dumps({W: [[0.0] * 5] * 16}), ("pickle",), "body"),
    "torch_save": (torch_save, ("pickle",), "body"),
    "zip_file": (a_zip, ("pickle", "safetensors"), "body"),
    "seven_bytes": (lambda c, d: d[:7], ("8-byte",), "header"),
}


def upload(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/v1/checkpoints", content=body, headers=OCTET)


def snapshot(client: httpx.Client, server: InProcessApp) -> tuple[list[tuple[str, int]], list[str]]:
    """The checkpoint files (every path under the files dir, temporary ones too, with sizes)
    and the checkpoint list."""
    files = server.data_dir / "files"
    on_disk = sorted(
        (str(p.relative_to(files)), p.stat().st_size if p.is_file() else -1)
        for p in (files.rglob("*") if files.exists() else [])
    )
    r = client.get("/v1/checkpoints", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return on_disk, [item["id"] for item in r.json()["items"]]


def assert_healthy(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/checkpoints").status_code == 200


def assert_json_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text[:500]}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "message", "field"}, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    return body


# ----------------------------------------------------------------------------- the suite


def test_the_genuine_file_is_accepted(api: httpx.Client, data: bytes, ckpt: Checkpoint) -> None:
    """Guards the crafting helpers: the real checkpoint, and one rebuilt through them."""
    r = upload(api, data)
    assert r.status_code == 201, r.text
    assert r.json()["step"] == 4 and r.json()["quality"] is not None
    again = upload(api, meta(step="4")(ckpt, data))
    assert again.status_code == 201, again.text
    none = upload(api, meta(metrics="")(ckpt, data))
    assert none.status_code == 201, none.text
    assert none.json()["metrics"] is None and none.json()["quality"] is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_upload_is_refused_and_changes_nothing(
    api: httpx.Client, module_server: InProcessApp, ckpt: Checkpoint, data: bytes, case: str
) -> None:
    build, words, field = CASES[case]
    body = build(ckpt, data)
    before = snapshot(api, module_server)
    err = assert_json_error(upload(api, body), 422)
    assert err["error"] == "invalid_checkpoint", err
    message = err["message"].lower()
    assert any(w.lower() in message for w in words), err
    assert isinstance(err["field"], str) and err["field"].startswith(field), err
    assert len(err["message"]) <= 600, "the message echoes the hostile input"
    assert snapshot(api, module_server) == before
    assert_healthy(api)


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", f"Basic {KEY}", "Bearer"])
def test_a_wrong_api_key_stores_nothing(
    module_server: InProcessApp, api: httpx.Client, data: bytes, header: str | None
) -> None:
    before = snapshot(api, module_server)
    headers = {} if header is None else {"authorization": header}
    with module_server.client(headers=headers) as anonymous:
        err = assert_json_error(upload(anonymous, data), 401)
    assert err["error"] == "unauthorized", err
    assert snapshot(api, module_server) == before
    assert_healthy(api)


# ----------------------------------------------------------------------------- odd rows

GOOD_CONFIG = TrainConfig(seed=1).to_dict()
LOSS = {"d_loss": 1.2, "g_loss": -0.6, "d_accuracy": 0.5, "d_score": -1.2}
QUALITY = {"in_band": 0.9, "resid": 0.1, "w1_a": 0.2}
# What a hand edit or an older version could have left in a row, as the JSON text stored.
ODD_ROWS: dict[str, tuple[str, str, str]] = {
    # name: (config, metrics, quality)
    "partial": (json.dumps(GOOD_CONFIG), '{"d_loss": 1.0}', '{"in_band": 0.5, "w1_a": 0.1}'),
    "not_objects": (json.dumps(GOOD_CONFIG), '"text"', "[1, 2]"),
    "nan_and_huge": (
        json.dumps(GOOD_CONFIG),
        json.dumps({**LOSS, "d_loss": float("nan")}),
        json.dumps(QUALITY)[:-1].replace("0.9", "1" + "0" * 400) + "}",
    ),
    "wrong_types": (
        json.dumps(GOOD_CONFIG),
        json.dumps({**LOSS, "g_loss": "low"}),
        json.dumps({**QUALITY, "w1_a": True}),
    ),
    "extra_names": (
        "[1, 2]",
        json.dumps({**LOSS, "fid": 3.0}),
        json.dumps({**QUALITY, "a_std": 0.1}),
    ),
    "sound": (json.dumps(GOOD_CONFIG), json.dumps(LOSS), json.dumps(QUALITY)),
}


@pytest.fixture
def odd_rows(module_server: InProcessApp) -> Iterator[dict[str, str]]:
    """ODD_ROWS inserted straight into the server's SQLite database; removed afterwards."""
    ids = {name: f"ck_odd_{name}" for name in ODD_ROWS}
    db = sqlite3.connect(module_server.data_dir / "curvegan.db", timeout=30)
    try:
        with db:
            (seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()
            for i, (name, (cfg, loss, quality)) in enumerate(ODD_ROWS.items()):
                db.execute(
                    "INSERT INTO checkpoints (id, seq, job_id, step, config, metrics, quality,"
                    " created_at, size_bytes, sha256, source) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        ids[name],
                        seq + 1 + i,
                        None,
                        7,
                        cfg,
                        loss,
                        quality,
                        time.time(),
                        1,
                        "0" * 64,
                        "upload",
                    ),
                )
        yield ids
    finally:
        with db:
            db.execute("DELETE FROM checkpoints WHERE id LIKE 'ck_odd_%'")
        db.close()


def test_odd_stored_rows_are_listed_with_null_metrics(
    api: httpx.Client, odd_rows: dict[str, str]
) -> None:
    r = api.get("/v1/checkpoints", params={"limit": 1000})
    assert r.status_code == 200, r.text[:500]
    listed = {item["id"]: item for item in r.json()["items"]}
    for name, ck_id in odd_rows.items():
        assert ck_id in listed, name
        one = api.get(f"/v1/checkpoints/{ck_id}")
        assert one.status_code == 200, one.text[:500]
        assert one.json() == listed[ck_id]
    sound = listed[odd_rows["sound"]]
    assert sound["metrics"] == LOSS and sound["quality"] == QUALITY
    for name in ("partial", "not_objects", "nan_and_huge", "wrong_types", "extra_names"):
        item = listed[odd_rows[name]]
        assert item["metrics"] is None and item["quality"] is None, (name, item)
        assert item["step"] == 7
    assert listed[odd_rows["extra_names"]]["config"] == {}
    assert listed[odd_rows["partial"]]["config"] == GOOD_CONFIG
    assert_healthy(api)


def test_a_stored_file_with_odd_metrics_still_samples_and_resumes(
    api: httpx.Client, module_server: InProcessApp, ckpt: Checkpoint, data: bytes
) -> None:
    """A file an older version stored with partial metrics (the upload it answered 500): its
    weights are still sampled from and resumed; only its metrics are forgotten."""
    created = upload(api, data)
    assert created.status_code == 201, created.text
    ck_id = created.json()["id"]
    stored = module_server.data_dir / "files" / f"{ck_id}.safetensors"
    assert stored.is_file()
    stored.write_bytes(meta(metrics=json.dumps({"d_loss": 1.0}))(ckpt, data))

    r = api.post(f"/v1/checkpoints/{ck_id}/samples", json={"n": 3, "seed": 1})
    assert r.status_code == 200, r.text
    assert len(r.json()["curves"]) == 3
    job = api.post("/v1/jobs", json={"resume_from": ck_id, "config": {"steps": 6}})
    assert job.status_code == 202, job.text
    done = wait_for_state(api, job.json()["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded" and done["step"] == 6, done
