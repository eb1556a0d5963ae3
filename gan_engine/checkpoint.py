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
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .checkpoint_checks import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    check_metadata,
    check_metrics,
    check_tensors,
    parse_config,
    parse_header,
    parse_metrics,
    parse_step,
)
from .config import MAX_CHECKPOINT_BYTES, TrainConfig
from .models import discriminator_for, generator_for

ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")
RNG_STATE_BYTES = 5056  # torch.Generator (mt19937) state on CPU


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
            "metrics": self._metrics_json(),
        }
        contiguous = {k: v.detach().contiguous() for k, v in self.tensors.items()}
        return st_save(contiguous, metadata=metadata)

    def _metrics_json(self) -> str:
        # Metrics are a report, never needed to resume: a set the loader would refuse
        # (partial, not finite) is left out rather than making the checkpoint unloadable.
        if not self.metrics:
            return ""
        try:
            return json.dumps(check_metrics(self.metrics), sort_keys=True)
        except CheckpointError:
            return ""

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
        return parse_header(data)
    except CheckpointError:
        # Only after the safetensors parse failed (a valid header length may start with
        # 0x80 too): say plainly what a pickle is. Such files are recognised, never opened.
        if data[:1] == b"\x80" or data[:4] == b"PK\x03\x04":
            raise CheckpointError(
                "this looks like a pickle or torch.save file, which is never loaded: "
                "only safetensors checkpoints are accepted"
            ) from None
        raise


def checkpoint_from_bytes(
    data: bytes,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
    *,
    odd_metrics: Literal["refuse", "drop"] = "refuse",
) -> Checkpoint:
    """Parses and validates a checkpoint; raises CheckpointError saying what is wrong.

    Every field is checked (checkpoint_checks) before a tensor is read, and what this returns
    can be resumed and sampled from. Metrics are a report that neither needs: files already
    stored (perhaps by an older version) are read with ``odd_metrics="drop"``, which gives
    metrics the checks refuse as None instead of refusing the file."""
    if len(data) > max_bytes:
        raise CheckpointError(f"checkpoint is {len(data)} bytes; the limit is {max_bytes}")
    meta = _read_metadata(data)
    check_metadata(meta)
    config = parse_config(meta.get("config", ""))
    step = parse_step(meta.get("step", ""), config)
    try:
        metrics = parse_metrics(meta.get("metrics", ""))
    except CheckpointError:
        if odd_metrics == "refuse":
            raise
        metrics = None
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error type for every malformation
        raise CheckpointError(f"corrupt checkpoint: {exc}", "tensors") from None
    check_tensors(tensors, expected_layout(config), step)
    return Checkpoint(config=config, step=step, tensors=tensors, metrics=metrics)


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
