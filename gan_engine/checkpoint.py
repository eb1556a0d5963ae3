"""Checkpoints: one safetensors file holding everything needed to resume exactly and to sample.

Layout: tensors ``g.*`` and ``d.*`` (model weights), ``g_ema.*`` (when EMA is on),
``opt_g.<i>.<key>`` / ``opt_d.<i>.<key>`` (Adam state per parameter), ``rng.train`` (the
training stream's generator state); string metadata ``format``, ``format_version``,
``config`` (JSON), ``step`` and ``metrics`` (JSON or empty). Nothing is ever unpickled:
the header is JSON and the tensors are raw little-endian buffers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import MAX_CHECKPOINT_BYTES, ConfigError, TrainConfig
from .models import discriminator_for, generator_for

FORMAT = "curvegan.checkpoint"
FORMAT_VERSION = 1
ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")
RNG_STATE_BYTES = 5056  # torch.Generator (mt19937) state on CPU


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    config: TrainConfig
    step: int
    tensors: dict[str, torch.Tensor]
    metrics: dict[str, float] | None = field(default=None)

    @property
    def generator_prefix(self) -> str:
        """Which weights sampling uses: the EMA copy when training kept one."""
        return "g_ema." if self.config.g_ema > 0 else "g."

    def to_bytes(self) -> bytes:
        metadata = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "step": str(self.step),
            "metrics": json.dumps(self.metrics, sort_keys=True) if self.metrics else "",
        }
        contiguous = {k: v.detach().contiguous() for k, v in self.tensors.items()}
        return st_save(contiguous, metadata=metadata)

    def save(self, path: str | os.PathLike[str]) -> int:
        """Writes atomically (temp file, fsync, rename); returns the size in bytes."""
        data = self.to_bytes()
        atomic_write(Path(path), data)
        return len(data)


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself must reach the disk for the file to survive a crash.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def expected_layout(config: TrainConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every tensor a checkpoint of ``config`` must hold, with its shape and dtype."""
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    # On the meta device: shapes only, no memory, and the global RNG is left alone.
    with torch.device("meta"):
        g, d = generator_for(config), discriminator_for(config)
    prefixes = [("g", g), ("d", d)] + ([("g_ema", g)] if config.g_ema > 0 else [])
    for prefix, model in prefixes:
        for name, p in model.state_dict().items():
            layout[f"{prefix}.{name}"] = (tuple(p.shape), torch.float32)
    for prefix, model in (("opt_g", g), ("opt_d", d)):
        for i, p in enumerate(model.parameters()):
            layout[f"{prefix}.{i}.step"] = ((), torch.float32)
            layout[f"{prefix}.{i}.exp_avg"] = (tuple(p.shape), torch.float32)
            layout[f"{prefix}.{i}.exp_avg_sq"] = (tuple(p.shape), torch.float32)
    layout["rng.train"] = ((RNG_STATE_BYTES,), torch.uint8)
    return layout


def _read_metadata(data: bytes) -> dict[str, str]:
    try:
        return _parse_header(data)
    except CheckpointError:
        # Only after the safetensors parse failed (a valid header length may start with
        # 0x80 too): say plainly what a pickle is. Such files are recognised, never opened.
        if data[:1] == b"\x80" or data[:4] == b"PK\x03\x04":
            raise CheckpointError(
                "this looks like a pickle or torch.save file, which is never loaded: "
                "only safetensors checkpoints are accepted"
            ) from None
        raise


def _parse_header(data: bytes) -> dict[str, str]:
    if len(data) < 8:
        raise CheckpointError("not a safetensors file: shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError("not a safetensors file: header length exceeds the file (truncated?)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not a safetensors file: header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError("not a safetensors file: header is not a JSON object")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict):
        raise CheckpointError("not a curvegan checkpoint: no metadata")
    return metadata


def checkpoint_from_bytes(data: bytes, max_bytes: int = MAX_CHECKPOINT_BYTES) -> Checkpoint:
    """Parses and validates a checkpoint; raises CheckpointError saying what is wrong."""
    if len(data) > max_bytes:
        raise CheckpointError(f"checkpoint is {len(data)} bytes; the limit is {max_bytes}")
    meta = _read_metadata(data)
    # The header is raw JSON until safetensors validates it later: refuse non-string
    # metadata here, before int() or json.loads() meet a list or a null.
    odd = sorted(k for k, v in meta.items() if not isinstance(v, str))
    if odd:
        raise CheckpointError(f"checkpoint metadata values must be strings: {', '.join(odd[:5])}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"not a curvegan checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"unsupported checkpoint format_version {meta.get('format_version')!r}; "
            f"this version reads {FORMAT_VERSION}"
        )
    try:
        config = TrainConfig.from_dict(json.loads(meta.get("config", "")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint config is not valid JSON ({exc})") from None
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint config is invalid: {exc}") from None
    if config.seed is None:
        raise CheckpointError("checkpoint config has no seed")
    try:
        step = int(meta.get("step", ""))
    except ValueError:
        raise CheckpointError(f"checkpoint step {meta.get('step')!r} is not an integer") from None
    if step < 0:
        raise CheckpointError(f"checkpoint step must be >= 0, got {step}")
    metrics = _parse_metrics(meta.get("metrics", ""))
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error type for every malformation
        raise CheckpointError(f"corrupt checkpoint: {exc}") from None
    _check_tensors(tensors, expected_layout(config))
    return Checkpoint(config=config, step=step, tensors=tensors, metrics=metrics)


def _parse_metrics(text: str) -> dict[str, float] | None:
    if not text:
        return None
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError:
        raise CheckpointError("checkpoint metrics are not valid JSON") from None
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
        for k, v in metrics.items()
    ):
        raise CheckpointError("checkpoint metrics must map names to numbers")
    return {k: float(v) for k, v in metrics.items()}


def _check_tensors(
    tensors: dict[str, torch.Tensor], layout: dict[str, tuple[tuple[int, ...], torch.dtype]]
) -> None:
    missing = sorted(set(layout) - set(tensors))
    extra = sorted(set(tensors) - set(layout))
    if missing:
        raise CheckpointError(
            f"checkpoint lacks tensors the config needs: {', '.join(missing[:5])}"
        )
    if extra:
        raise CheckpointError(f"checkpoint has tensors the config does not: {', '.join(extra[:5])}")
    for name, (shape, dtype) in layout.items():
        t = tensors[name]
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise CheckpointError(
                f"tensor {name} is {t.dtype} {list(t.shape)}; the config needs {dtype} {list(shape)}"
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"tensor {name} holds NaN or infinite values")


def load_checkpoint(
    path: str | os.PathLike[str], max_bytes: int = MAX_CHECKPOINT_BYTES
) -> Checkpoint:
    """Reads and validates a checkpoint file (size checked before reading)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {exc.strerror}") from None
    if size > max_bytes:
        raise CheckpointError(f"checkpoint is {size} bytes; the limit is {max_bytes}")
    return checkpoint_from_bytes(p.read_bytes(), max_bytes)


def finite_metrics(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """Metrics fit to store: JSON has no NaN, so non-finite values are dropped."""
    if metrics is None:
        return None
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
