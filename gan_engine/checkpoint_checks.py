"""What a checkpoint file may hold, checked field by field before anything uses it.

A checkpoint comes from anywhere (an upload, a shared disk), so every part of it is typed and
bounded here: the safetensors header (length, JSON, no duplicate keys, depth), the metadata
(known keys, string values of bounded length, format version, config, step, metrics) and the
tensors (exact names, shapes and dtypes, finite values, a usable Adam and RNG state). Each
refusal is a CheckpointError naming the part (``field``) and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from typing import Any

import torch

from .config import ConfigError, TrainConfig

FORMAT = "curvegan.checkpoint"
FORMAT_VERSION = 1
# The widest and deepest config's header (8 layers each side, EMA, Adam state: ~165 tensors)
# is under 32 KiB; anything far larger is not a checkpoint, and its JSON is not worth parsing.
MAX_HEADER_BYTES = 256 * 1024
# Lengths of the metadata strings: a config is ~600 characters and the metrics ~300.
METADATA_LIMITS = {
    "format": 64,
    "format_version": 16,
    "config": 16_384,
    "step": 32,
    "metrics": 4_096,
}
# The metrics a checkpoint records (the trainer's LogRecord without its step), each with the
# range its definition allows: losses are softplus sums (>= 0; the minimax G loss is <= 0),
# d_accuracy is a mean sigmoid, in_band a share, the rest distances and deviations.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "d_loss": (0.0, math.inf),
    "g_loss": (-math.inf, math.inf),
    "d_accuracy": (0.0, 1.0),
    "d_score": (-math.inf, 0.0),
    "in_band": (0.0, 1.0),
    "resid": (0.0, math.inf),
    "w1_a": (0.0, math.inf),
    "a_std": (0.0, math.inf),
}
MAX_MESSAGE_CHARS = 500
# Plain decimal digits only: int() would also take " 7", "+7", "7_0" and other scripts' digits.
_STEP = re.compile(r"0|-?[1-9][0-9]*")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and ``field`` names the part
    (``header``, ``metadata.step``, ``metadata.config.lr_g``, ``tensors.g.out.weight``...)."""

    def __init__(self, message: str, field: str = "body") -> None:
        # Messages quote what they refuse: a hostile value is cut, not echoed whole.
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(message)
        self.field = field


def strict_json(text: str | bytes, what: str, field: str) -> Any:
    """JSON as Python values, refusing duplicate keys (two readers could take different ones)
    and nesting too deep to parse."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise CheckpointError(f"{what} has duplicate keys: {', '.join(twice[:5])}", field)
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except CheckpointError:  # a ValueError too: said as it is, not as "is not JSON (...)"
        raise
    except RecursionError:
        raise CheckpointError(f"{what} is nested too deeply", field) from None
    except ValueError as exc:  # not UTF-8, JSONDecodeError, integers of over 4 300 digits
        raise CheckpointError(f"{what} is not JSON ({exc})", field) from None


def parse_header(data: bytes) -> dict[str, str]:
    """The metadata of a safetensors file, after checking the header's length and JSON."""
    if len(data) < 8:
        raise CheckpointError(
            "not a safetensors file: shorter than its 8-byte header length", "header"
        )
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError(
            "not a safetensors file: header length exceeds the file (truncated?)", "header"
        )
    if not 2 <= header_len <= MAX_HEADER_BYTES:
        raise CheckpointError(
            f"not a safetensors file: header length {header_len} is outside "
            f"[2, {MAX_HEADER_BYTES}] bytes",
            "header",
        )
    header = strict_json(data[8 : 8 + header_len], "not a safetensors file: header", "header")
    if not isinstance(header, dict):
        raise CheckpointError("not a safetensors file: header is not a JSON object", "header")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict):
        raise CheckpointError("not a curvegan checkpoint: no metadata", "metadata")
    return metadata


def check_metadata(meta: Mapping[str, Any]) -> None:
    """Known keys only, each a string of bounded length, and our format and version."""
    odd = sorted(k for k, v in meta.items() if not isinstance(v, str))
    if odd:
        raise CheckpointError(
            f"checkpoint metadata values must be strings: {', '.join(odd[:5])}",
            f"metadata.{odd[0]}",
        )
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"not a curvegan checkpoint (format {str(meta.get('format'))[:64]!r})",
            "metadata.format",
        )
    unknown = sorted(set(meta) - set(METADATA_LIMITS))
    if unknown:
        raise CheckpointError(
            f"checkpoint metadata has unknown keys: {', '.join(k[:64] for k in unknown[:5])}; "
            f"allowed: {', '.join(METADATA_LIMITS)}",
            "metadata",
        )
    for key, limit in METADATA_LIMITS.items():
        if len(meta.get(key, "")) > limit:
            raise CheckpointError(
                f"checkpoint metadata {key} is {len(meta[key])} characters; at most {limit}",
                f"metadata.{key}",
            )
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"unsupported checkpoint format_version {meta.get('format_version')!r}; "
            f"this version reads {FORMAT_VERSION}",
            "metadata.format_version",
        )


def parse_config(text: str) -> TrainConfig:
    raw = strict_json(text, "checkpoint config", "metadata.config")
    try:
        config = TrainConfig.from_dict(raw)
    except (TypeError, AttributeError):
        raise CheckpointError(
            "checkpoint config is invalid: must be a JSON object", "metadata.config"
        ) from None
    except ConfigError as exc:
        raise CheckpointError(
            f"checkpoint config is invalid: {exc}", f"metadata.config.{exc.field}"
        ) from None
    if config.seed is None:
        raise CheckpointError("checkpoint config has no seed", "metadata.config.seed")
    return config


def parse_step(text: str, config: TrainConfig) -> int:
    if not _STEP.fullmatch(text):
        raise CheckpointError(
            f"checkpoint step {text[:32]!r} is not an integer (decimal digits)", "metadata.step"
        )
    step = int(text)
    if not 0 <= step <= config.steps:
        raise CheckpointError(
            f"checkpoint step must be in [0, {config.steps}] (the config's steps), got {step}",
            "metadata.step",
        )
    return step


def parse_metrics(text: str) -> dict[str, float] | None:
    """All of METRIC_RANGES or none (an empty string or object)."""
    if not text:
        return None
    metrics = strict_json(text, "checkpoint metrics field", "metadata.metrics")
    if not isinstance(metrics, dict):
        raise CheckpointError("checkpoint metrics must map names to numbers", "metadata.metrics")
    return check_metrics(metrics) if metrics else None


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The complete set of known metrics as finite floats within their ranges."""
    field = "metadata.metrics"
    unknown = sorted(set(metrics) - set(METRIC_RANGES))
    if unknown:
        raise CheckpointError(
            f"checkpoint metrics has unknown names: {', '.join(k[:64] for k in unknown[:5])}; "
            f"known: {', '.join(METRIC_RANGES)}",
            f"{field}.{unknown[0][:64]}",
        )
    out: dict[str, float] = {}
    for name, (lo, hi) in METRIC_RANGES.items():
        if name not in metrics:
            continue
        value = metrics[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(
                f"checkpoint metrics must map names to numbers: {name} is {value!r:.64}",
                f"{field}.{name}",
            )
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not (math.isfinite(number) and lo <= number <= hi):
            raise CheckpointError(
                f"checkpoint metric {name} must be a finite number in [{lo:g}, {hi:g}], "
                f"got {str(value)[:32]}",
                f"{field}.{name}",
            )
        out[name] = number
    missing = [k for k in METRIC_RANGES if k not in out]
    if missing:
        raise CheckpointError(
            f"checkpoint metrics are partial, lacking {', '.join(missing)}: "
            "give all of them or none",
            f"{field}.{missing[0]}",
        )
    return out


def check_tensors(
    tensors: Mapping[str, torch.Tensor],
    layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    step: int,
) -> None:
    """Exactly the layout's tensors, finite, with the Adam state and the RNG state a resumed
    run can use."""
    missing = sorted(set(layout) - set(tensors))
    extra = sorted(set(tensors) - set(layout))
    if missing:
        raise CheckpointError(
            f"checkpoint lacks tensors the config needs: {', '.join(missing[:5])}",
            f"tensors.{missing[0]}",
        )
    if extra:
        raise CheckpointError(
            f"checkpoint has tensors the config does not: {', '.join(k[:64] for k in extra[:5])}",
            f"tensors.{extra[0][:64]}",
        )
    for name, (shape, dtype) in layout.items():
        t = tensors[name]
        field = f"tensors.{name}"
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise CheckpointError(
                f"tensor {name} is {t.dtype} {list(t.shape)}; the config needs {dtype} {list(shape)}",
                field,
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"tensor {name} holds NaN or infinite values", field)
        if name.endswith(".exp_avg_sq") and bool((t < 0).any()):
            # Adam divides by its square root: a negative one is NaN at the first step.
            raise CheckpointError(f"tensor {name} holds negative values", field)
        if name.endswith(".step") and float(t) != step:
            # Adam's bias correction counts steps: the trainers keep it equal to the step.
            raise CheckpointError(
                f"tensor {name} is {float(t):g}; it must equal the checkpoint's step {step}",
                field,
            )
    try:
        torch.Generator().set_state(tensors["rng.train"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"tensor rng.train is not a random generator state ({exc})", "tensors.rng.train"
        ) from None
