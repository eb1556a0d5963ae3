"""Checkpoints: exact round trips, atomic writes, and clear refusals of anything unusable."""

from __future__ import annotations

import json
import pickle
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from gan_engine import (
    Checkpoint,
    CheckpointError,
    TrainConfig,
    Trainer,
    checkpoint_from_bytes,
    load_checkpoint,
)


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    t = Trainer(TrainConfig(seed=5, steps=30, log_every=10, checkpoint_every=0, g_ema=0.9))
    t.run()
    return t.checkpoint()


def test_round_trip_is_exact(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "c.safetensors"
    size = ckpt.save(path)
    assert size == path.stat().st_size
    back = load_checkpoint(path)
    assert back.config == ckpt.config and back.step == 30
    assert back.metrics == ckpt.metrics and back.metrics is not None
    assert set(back.tensors) == set(ckpt.tensors)
    assert all(torch.equal(back.tensors[k], v) for k, v in ckpt.tensors.items())
    assert any(k.startswith("g_ema.") for k in back.tensors)
    assert Trainer.from_checkpoint(back).step_count == 30


def test_atomic_save_overwrites_and_leaves_no_temp_files(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "sub" / "c.safetensors"
    path.parent.mkdir()
    path.write_bytes(b"old")
    ckpt.save(path)
    assert load_checkpoint(path).step == ckpt.step
    assert [p.name for p in path.parent.iterdir()] == ["c.safetensors"]


def edited(ckpt: Checkpoint, **tensors: torch.Tensor | None) -> bytes:
    new = dict(ckpt.tensors)
    for name, value in tensors.items():
        name = name.replace("__", ".")
        if value is None:
            new.pop(name)
        else:
            new[name] = value
    return replace(ckpt, tensors=new).to_bytes()


def with_metadata(ckpt: Checkpoint, **changes: str) -> bytes:
    data = ckpt.to_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"].update(changes)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    # Tensor offsets are relative to the end of the header, so a new header length is fine.
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def refused(data: bytes, match: str, **kw: int) -> None:
    with pytest.raises(CheckpointError, match=match):
        checkpoint_from_bytes(data, **kw)


def test_refuses_truncated_and_garbage(ckpt: Checkpoint) -> None:
    data = ckpt.to_bytes()
    refused(data[: len(data) // 2], "corrupt|truncated")
    refused(data[:6], "shorter")
    refused(b"\x13" * 4096, "not a safetensors")
    refused(b"", "shorter")


def test_refuses_pickles_without_opening_them() -> None:
    class Boom:
        def __reduce__(self) -> tuple:
            return (exec, ("raise SystemExit('unpickled!')",))

    refused(pickle.dumps({"g.hidden.weight": Boom()}), "pickle")


def test_refuses_foreign_safetensors() -> None:
    refused(st_save({"w": torch.ones(2)}), "not a curvegan checkpoint")
    refused(st_save({"w": torch.ones(2)}, metadata={"format": "pt"}), "not a curvegan checkpoint")


def test_refuses_other_format_versions_and_bad_metadata(ckpt: Checkpoint) -> None:
    refused(with_metadata(ckpt, format_version="99"), "format_version")
    refused(with_metadata(ckpt, config='{"steps": -4}'), "config is invalid: steps")
    refused(with_metadata(ckpt, config="{nope"), "not valid JSON")
    refused(with_metadata(ckpt, step="ten"), "not an integer")


def test_refuses_wrong_missing_extra_and_non_finite_tensors(ckpt: Checkpoint) -> None:
    refused(edited(ckpt, g__out__weight=torch.zeros(15, 64)), r"g\.out\.weight .*needs")
    refused(edited(ckpt, d__out__bias=None), "lacks tensors.*d.out.bias")
    refused(edited(ckpt, extra=torch.zeros(1)), "has tensors the config does not: extra")
    nan = ckpt.tensors["g.hidden.weight"].clone()
    nan[0, 0] = float("nan")
    refused(edited(ckpt, g__hidden__weight=nan), "NaN or infinite")
    refused(edited(ckpt, d__out__bias=torch.zeros(1, dtype=torch.float64)), "float64")


def test_refuses_files_over_the_size_limit(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "c.safetensors"
    size = ckpt.save(path)
    with pytest.raises(CheckpointError, match=f"{size} bytes; the limit is 1000"):
        load_checkpoint(path, max_bytes=1000)
    refused(ckpt.to_bytes(), "the limit is 1000", max_bytes=1000)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "missing.safetensors")
