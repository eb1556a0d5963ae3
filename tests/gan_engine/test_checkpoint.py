"""Checkpoints: exact round trips through real files, atomic writes, and clear refusals."""

from __future__ import annotations

import json
import os
import pickle
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gan_engine import (
    FORMAT_VERSION,
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    CheckpointError,
    CurveSampler,
    LogRecord,
    TrainConfig,
    Trainer,
    checkpoint_from_bytes,
    load_checkpoint,
)
from gan_engine.checkpoint import FORMAT, expected_layout
from gan_engine.checkpoint_checks import MAX_HEADER_BYTES, METADATA_LIMITS, METRIC_RANGES


def trained(steps_taken: int = 3, *, evaluate: bool = True, **config: object) -> Trainer:
    t = Trainer(TrainConfig(seed=11, steps=10, log_every=5, checkpoint_every=0, **config))  # type: ignore[arg-type]
    for _ in range(steps_taken):
        t.step()
    if evaluate:
        t.evaluate()
    return t


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    return trained().checkpoint()


@pytest.fixture(scope="module")
def ema_ckpt() -> Checkpoint:
    return trained(g_ema=0.9).checkpoint()


@pytest.fixture
def good_file(tmp_path: Path, ckpt: Checkpoint) -> Path:
    path = tmp_path / "good.safetensors"
    ckpt.save(path)
    return path


def assert_same(a: Checkpoint, b: Checkpoint) -> None:
    assert a.config == b.config
    assert a.step == b.step
    assert a.metrics == b.metrics
    assert set(a.tensors) == set(b.tensors)
    for name, t in a.tensors.items():
        assert t.dtype == b.tensors[name].dtype, name
        assert torch.equal(t, b.tensors[name]), name


# ---------------------------------------------------------------------- round trips


def test_round_trip_is_exact(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "c.safetensors"
    size = ckpt.save(path)
    assert size == path.stat().st_size > 0
    back = load_checkpoint(path)
    assert_same(back, ckpt)
    assert back.step == 3
    assert back.config.seed == 11 and back.config.steps == 10
    assert back.metrics is not None and set(back.metrics) >= {"d_loss", "g_loss", "w1_a"}
    assert not any(k.startswith("g_ema.") for k in back.tensors)
    assert back.generator_prefix == "g."
    # The tensors are exactly the layout the config demands.
    layout = expected_layout(back.config)
    assert {k: (tuple(v.shape), v.dtype) for k, v in back.tensors.items()} == layout
    # Loading a str path works as well as a Path.
    assert_same(load_checkpoint(str(path)), ckpt)


def test_file_is_plain_safetensors_with_our_metadata(good_file: Path, ckpt: Checkpoint) -> None:
    with safe_open(str(good_file), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
        weight = f.get_tensor("g.out.weight")
    assert meta["format"] == FORMAT
    assert meta["format_version"] == str(FORMAT_VERSION)
    assert json.loads(meta["config"]) == ckpt.config.to_dict()
    assert meta["step"] == "3"
    assert json.loads(meta["metrics"]) == ckpt.metrics
    assert keys == set(ckpt.tensors)
    assert torch.equal(weight, ckpt.tensors["g.out.weight"])


def test_round_trip_without_metrics(tmp_path: Path) -> None:
    t = trained(2, evaluate=False)
    ckpt = t.checkpoint()
    assert ckpt.metrics is None
    path = tmp_path / "c.safetensors"
    ckpt.save(path)
    back = load_checkpoint(path)
    assert back.metrics is None and back.step == 2
    assert_same(back, ckpt)


def test_metrics_are_the_trainers_log_record() -> None:
    """The loader's set of metrics is what a trainer records, so no checkpoint the trainers
    write is refused for its metrics."""
    assert set(METRIC_RANGES) == set(LogRecord.__dataclass_fields__) - {"step"}


def test_metrics_the_loader_would_refuse_are_not_written(tmp_path: Path, ckpt: Checkpoint) -> None:
    assert ckpt.metrics is not None
    partial = {k: v for k, v in ckpt.metrics.items() if k != "resid"}
    for bad in (partial, {**ckpt.metrics, "w1_a": float("nan")}):
        back = checkpoint_from_bytes(replace(ckpt, metrics=bad).to_bytes())
        assert back.metrics is None and back.step == ckpt.step
    assert checkpoint_from_bytes(ckpt.to_bytes()).metrics == ckpt.metrics


def test_stored_files_with_odd_metrics_still_load_without_them(
    tmp_path: Path, ckpt: Checkpoint
) -> None:
    for odd in ('{"d_loss": 1.0}', '{"w1_a": NaN}', "[1]", "{bad"):
        data = resave(tmp_path, ckpt, metrics=odd).read_bytes()
        with pytest.raises(CheckpointError, match="metric"):
            checkpoint_from_bytes(data)
        back = checkpoint_from_bytes(data, odd_metrics="drop")
        assert back.metrics is None
        assert_same(back, replace(ckpt, metrics=None))
    with pytest.raises(CheckpointError, match="step"):  # only the metrics are forgiven
        checkpoint_from_bytes(resave(tmp_path, ckpt, step="x").read_bytes(), odd_metrics="drop")


def test_the_largest_config_header_fits_the_header_limit() -> None:
    config = TrainConfig(seed=1, g_layers=8, d_layers=8, g_ema=0.9, hidden=512, steps=10**7)
    far = [MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_BYTES]  # offsets with the most digits
    header = {
        name: {"dtype": "F32", "shape": list(shape), "data_offsets": far}
        for name, (shape, _) in expected_layout(config).items()
    }
    metrics = {k: -1.2345678901234567e-300 for k in METRIC_RANGES}
    header["__metadata__"] = {
        "config": json.dumps(config.to_dict()),
        "metrics": json.dumps(metrics),
        "step": str(config.steps),
    }
    assert len(json.dumps(header)) < MAX_HEADER_BYTES / 4
    assert len(header["__metadata__"]["config"]) < METADATA_LIMITS["config"] / 4
    assert len(header["__metadata__"]["metrics"]) < METADATA_LIMITS["metrics"] / 4


def test_checkpoint_before_any_step_round_trips(tmp_path: Path) -> None:
    t = trained(0, evaluate=False)
    path = tmp_path / "c.safetensors"
    t.checkpoint().save(path)
    back = load_checkpoint(path)
    assert back.step == 0
    assert float(back.tensors["opt_g.0.step"]) == 0.0
    assert not bool(back.tensors["opt_d.0.exp_avg"].any())


def test_snapshot_does_not_follow_later_training(ckpt: Checkpoint) -> None:
    t = trained()
    snap = t.checkpoint()
    before = snap.tensors["g.out.weight"].clone()
    t.step()
    assert torch.equal(snap.tensors["g.out.weight"], before)
    assert_same(snap, ckpt)  # same seed, same steps: the same checkpoint


def test_ema_checkpoint_holds_g_ema_tensors(tmp_path: Path, ema_ckpt: Checkpoint) -> None:
    path = tmp_path / "ema.safetensors"
    ema_ckpt.save(path)
    back = load_checkpoint(path)
    assert_same(back, ema_ckpt)
    ema = {k for k in back.tensors if k.startswith("g_ema.")}
    assert ema == {"g_ema.hidden.weight", "g_ema.hidden.bias", "g_ema.out.weight", "g_ema.out.bias"}
    assert back.generator_prefix == "g_ema."
    # After 3 steps with decay 0.9 the average lags behind G.
    assert not torch.equal(back.tensors["g_ema.out.weight"], back.tensors["g.out.weight"])
    resumed = Trainer.from_checkpoint(back)
    assert resumed.g_ema is not None
    assert torch.equal(resumed.g_ema.out.weight, back.tensors["g_ema.out.weight"])


def test_deeper_and_wider_models_round_trip_and_sample(tmp_path: Path) -> None:
    deep = trained(g_layers=3, d_layers=2, hidden=16, d_hidden=24, g_ema=0.9).checkpoint()
    path = tmp_path / "deep.safetensors"
    deep.save(path)
    back = load_checkpoint(path)
    assert_same(back, deep)
    assert back.tensors["g.extra.1.weight"].shape == (16, 16)
    assert back.tensors["d.extra.0.weight"].shape == (24, 24)
    assert back.tensors["d.hidden.weight"].shape == (24, 15)
    assert set(expected_layout(back.config)) == set(back.tensors)
    curves = CurveSampler.from_checkpoint(back).sample(4, seed=1).curves
    assert curves.shape == (4, 15)
    # A shallower config cannot take these tensors.
    with pytest.raises(CheckpointError, match="has tensors the config does not"):
        checkpoint_from_bytes_with(back, g_layers=2)


def checkpoint_from_bytes_with(ckpt: Checkpoint, **changes: object) -> Checkpoint:
    return checkpoint_from_bytes(replace(ckpt, config=ckpt.config.replace(**changes)).to_bytes())


def test_from_checkpoint_resumes_where_it_stopped(tmp_path: Path) -> None:
    original = trained()
    path = tmp_path / "c.safetensors"
    original.checkpoint().save(path)
    resumed = Trainer.from_checkpoint(load_checkpoint(path))
    assert resumed.step_count == 3
    assert resumed.config == original.config
    assert resumed.last_record is not None and resumed.last_record.step == 3
    assert resumed.last_record == original.last_record
    # Same weights, optimizer state and random stream: the next step is identical.
    a, b = original.step(), resumed.step()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert_same(original.checkpoint(), resumed.checkpoint())
    # run() continues to config.steps, not from zero.
    result = resumed.run()
    assert result.step == 10 and resumed.step_count == 10


# ---------------------------------------------------------------------- atomic save


def test_atomic_save_overwrites_and_leaves_no_temp_files(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"an older, different file")
    ckpt.save(path)
    assert_same(load_checkpoint(path), ckpt)
    ckpt.save(path)  # and again over a valid one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]
    assert_same(load_checkpoint(path), ckpt)


def test_save_creates_missing_directories(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "a" / "b" / "c.safetensors"
    ckpt.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["c.safetensors"]
    assert load_checkpoint(path).step == ckpt.step


def test_failed_save_keeps_the_old_file_and_no_temp_files(tmp_path: Path, ckpt: Checkpoint) -> None:
    # The target is a non-empty directory: the final rename fails after the temp file is written.
    target = tmp_path / "c.safetensors"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    with pytest.raises(OSError):
        ckpt.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]
    assert (target / "keep").read_bytes() == b"x"


# ---------------------------------------------------------------------- refusals


def refused(path: Path, match: str, **kw: int) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, **kw)
    return info.value


def write(tmp_path: Path, data: bytes, name: str = "bad.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def metadata_of(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def resave(
    tmp_path: Path,
    ckpt: Checkpoint,
    tensors: dict[str, torch.Tensor] | None = None,
    **meta_changes: str,
) -> Path:
    """The checkpoint's tensors (or ``tensors``) and metadata, edited, saved by safetensors."""
    good = tmp_path / "source.safetensors"
    ckpt.save(good)
    meta = metadata_of(good) | meta_changes
    path = tmp_path / "edited.safetensors"
    save_file(tensors if tensors is not None else dict(ckpt.tensors), str(path), metadata=meta)
    return path


def with_tensors(tmp_path: Path, ckpt: Checkpoint, **changes: torch.Tensor | None) -> Path:
    """Edits ckpt.tensors (``a__b`` names ``a.b``; None removes it) and saves it the normal way."""
    tensors = dict(ckpt.tensors)
    for key, value in changes.items():
        name = key.replace("__", ".")
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    path = tmp_path / "edited.safetensors"
    replace(ckpt, tensors=tensors).save(path)
    return path


def raw_metadata(good: Path, **changes: object) -> bytes:
    """The file's bytes with its JSON header's metadata edited, even to non-string values."""
    data = good.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"].update(changes)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    # Tensor offsets are relative to the end of the header, so a new header length is fine.
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def test_refuses_truncated_files(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    refused(write(tmp_path, data[: len(data) // 2]), "corrupt checkpoint")
    refused(write(tmp_path, data[:-1]), "corrupt checkpoint")
    refused(write(tmp_path, data[:100]), r"header length exceeds the file \(truncated\?\)")
    refused(write(tmp_path, data[:6]), "shorter than its 8-byte header length")
    refused(write(tmp_path, b""), "shorter than its 8-byte header length")


def test_refuses_random_garbage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(5):
        garbage = rng.bytes(4096)
        if garbage[:1] == b"\x80":  # would be (rightly) called a pickle
            continue
        refused(write(tmp_path, garbage, f"g{i}"), "not a safetensors file")
    # A plausible header length followed by bytes that are not JSON.
    refused(write(tmp_path, struct.pack("<Q", 16) + b"\xff" * 64), "header is not JSON")
    header = b'["a list"]      '
    refused(write(tmp_path, struct.pack("<Q", 16) + header), "header is not a JSON object")


def test_refuses_pickles_without_opening_them(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple:
            return (exec, ("raise SystemExit('a checkpoint was unpickled!')",))

    plain = pickle.dumps({"g.hidden.weight": [[0.0] * 5] * 128, "step": 3})
    err = refused(write(tmp_path, plain), "pickle")
    assert "never loaded" in str(err) and "safetensors" in str(err)
    refused(write(tmp_path, pickle.dumps({"g.hidden.weight": Boom()})), "pickle")


def test_refuses_torch_save_files(tmp_path: Path, ckpt: Checkpoint) -> None:
    path = tmp_path / "c.pt"
    torch.save(dict(ckpt.tensors), path)
    refused(path, "pickle or torch.save")


def test_refuses_safetensors_that_are_not_ours(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors = {"weight": torch.randn(4, 3, generator=gen), "bias": torch.randn(3, generator=gen)}
    path = tmp_path / "other.safetensors"
    save_file(tensors, str(path))
    refused(path, "not a curvegan checkpoint: no metadata")
    save_file(tensors, str(path), metadata={"format": "pt"})
    refused(path, r"not a curvegan checkpoint \(format 'pt'\)")


def test_refuses_other_format_versions(tmp_path: Path, ckpt: Checkpoint) -> None:
    err = refused(
        resave(tmp_path, ckpt, format_version="2"), "unsupported checkpoint format_version"
    )
    assert "'2'" in str(err) and f"reads {FORMAT_VERSION}" in str(err)
    refused(resave(tmp_path, ckpt, format_version="0"), "format_version")
    refused(resave(tmp_path, ckpt, format_version=""), "format_version")


def test_refuses_invalid_config(tmp_path: Path, ckpt: Checkpoint) -> None:
    bad = {**ckpt.config.to_dict(), "steps": -4}
    refused(resave(tmp_path, ckpt, config=json.dumps(bad)), "config is invalid: steps")
    bad = {**ckpt.config.to_dict(), "loss": "hinge"}
    refused(resave(tmp_path, ckpt, config=json.dumps(bad)), "config is invalid: loss")
    bad = {**ckpt.config.to_dict(), "epochs": 3}
    refused(resave(tmp_path, ckpt, config=json.dumps(bad)), "config is invalid: epochs")
    bad = {**ckpt.config.to_dict(), "seed": None}
    refused(resave(tmp_path, ckpt, config=json.dumps(bad)), "config has no seed")
    refused(resave(tmp_path, ckpt, config="{nope"), "config is not JSON")
    refused(resave(tmp_path, ckpt, config="[1, 2]"), "config is invalid")


def test_refuses_config_that_disagrees_with_the_tensors(tmp_path: Path, ckpt: Checkpoint) -> None:
    wider = {**ckpt.config.to_dict(), "hidden": 64}
    refused(resave(tmp_path, ckpt, config=json.dumps(wider)), r"the config needs .*\[64")
    with_ema = {**ckpt.config.to_dict(), "g_ema": 0.5}
    refused(resave(tmp_path, ckpt, config=json.dumps(with_ema)), "lacks tensors.*g_ema")


def test_refuses_bad_step_and_metrics(tmp_path: Path, ckpt: Checkpoint) -> None:
    refused(resave(tmp_path, ckpt, step="ten"), "step 'ten' is not an integer")
    refused(resave(tmp_path, ckpt, step=""), "is not an integer")
    refused(resave(tmp_path, ckpt, step="-1"), r"step must be in \[0, ")
    refused(resave(tmp_path, ckpt, metrics="{bad"), "metrics field is not JSON")
    refused(resave(tmp_path, ckpt, metrics="[1, 2]"), "metrics must map names to numbers")
    refused(resave(tmp_path, ckpt, metrics='{"w1_a": "low"}'), "metrics must map names to numbers")
    refused(resave(tmp_path, ckpt, metrics='{"w1_a": true}'), "metrics must map names to numbers")


def test_refuses_a_tensor_of_the_wrong_shape(tmp_path: Path, ckpt: Checkpoint) -> None:
    err = refused(
        with_tensors(tmp_path, ckpt, g__out__weight=torch.zeros(15, 64)),
        r"tensor g\.out\.weight is torch\.float32 \[15, 64\]; the config needs torch\.float32 \[15, 128\]",
    )
    assert "g.out.weight" in str(err)
    refused(
        with_tensors(tmp_path, ckpt, rng__train=torch.zeros(10, dtype=torch.uint8)), "rng.train"
    )
    refused(with_tensors(tmp_path, ckpt, opt_d__0__step=torch.zeros(1)), r"opt_d\.0\.step")


def test_refuses_a_tensor_of_the_wrong_dtype(tmp_path: Path, ckpt: Checkpoint) -> None:
    as_double = ckpt.tensors["d.out.bias"].double()
    refused(with_tensors(tmp_path, ckpt, d__out__bias=as_double), r"d\.out\.bias is torch\.float64")


def test_refuses_missing_tensors(tmp_path: Path, ckpt: Checkpoint, ema_ckpt: Checkpoint) -> None:
    refused(
        with_tensors(tmp_path, ckpt, d__out__bias=None),
        r"lacks tensors the config needs: d\.out\.bias",
    )
    refused(with_tensors(tmp_path, ckpt, rng__train=None), r"lacks tensors.*rng\.train")
    refused(
        with_tensors(tmp_path, ema_ckpt, g_ema__hidden__weight=None),
        r"lacks tensors.*g_ema\.hidden\.weight",
    )


def test_refuses_extra_tensors(tmp_path: Path, ckpt: Checkpoint, ema_ckpt: Checkpoint) -> None:
    refused(
        with_tensors(tmp_path, ckpt, extra=torch.zeros(1)),
        "has tensors the config does not: extra",
    )
    # EMA weights in a checkpoint whose config has no EMA are extra too.
    ema_weight = ema_ckpt.tensors["g_ema.out.weight"]
    refused(
        with_tensors(tmp_path, ckpt, g_ema__out__weight=ema_weight),
        r"does not: g_ema\.out\.weight",
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", ["g.hidden.weight", "d.out.bias", "opt_g.1.exp_avg_sq"])
def test_refuses_non_finite_values(tmp_path: Path, ckpt: Checkpoint, name: str, bad: float) -> None:
    t = ckpt.tensors[name].clone()
    t.view(-1)[0] = bad
    path = with_tensors(tmp_path, ckpt, **{name.replace(".", "__"): t})
    refused(path, f"tensor {name} holds NaN or infinite values")


def test_refuses_files_over_max_bytes(tmp_path: Path, good_file: Path) -> None:
    size = good_file.stat().st_size
    refused(good_file, f"checkpoint is {size} bytes; the limit is 1000", max_bytes=1000)
    refused(good_file, "the limit is", max_bytes=size - 1)
    assert load_checkpoint(good_file, max_bytes=size).step == 3  # the limit is inclusive


def test_refuses_a_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "missing.safetensors", "cannot read checkpoint")


def test_every_refusal_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_checkpoint(write(tmp_path, b"\x00" * 3))


@pytest.mark.parametrize("changes", [{"step": [3]}, {"step": None}, {"metrics": {"w1_a": 0.1}}])
def test_non_string_metadata_is_refused_with_checkpoint_error(
    tmp_path: Path, good_file: Path, changes: dict[str, object]
) -> None:
    with pytest.raises(CheckpointError):
        load_checkpoint(write(tmp_path, raw_metadata(good_file, **changes)))


def test_raw_metadata_helper_keeps_a_valid_file(tmp_path: Path, good_file: Path) -> None:
    # Guards the helper above: with string values the edited file still loads.
    path = write(tmp_path, raw_metadata(good_file, step="3"))
    assert load_checkpoint(path).step == 3
    assert os.path.getsize(path) >= os.path.getsize(good_file)
