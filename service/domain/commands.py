"""What a client asks of the service, as plain commands (the HTTP edge builds them from request
bodies; scripts and tests build them directly), and the rules every creation shares: the
preset, the Idempotency-Key, the request's meaning and the seed."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gan_engine.config import ConfigError, TrainConfig, resolve_preset

from .errors import Invalid
from .sweeps import DEFAULT_BEST_BY

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class CreateJob:
    name: str | None = None
    # The named recipe that ``config`` overrides; None is the tutorial's.
    preset: str | None = None
    config: Mapping[str, Any] | None = None
    resume_from: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class CreateSweep:
    name: str | None = None
    preset: str | None = None
    config: Mapping[str, Any] | None = None
    # Exactly one of: a grid {field: [values]}, or an explicit list of members' fields.
    vary: Mapping[str, Any] | None = None
    members: Sequence[Mapping[str, Any]] | None = None
    best_by: str = DEFAULT_BEST_BY
    idempotency_key: str | None = None


@dataclass(frozen=True)
class SampleCurves:
    """``n`` curves from latents drawn with ``seed``, or one curve per row of ``z``."""

    n: int | None = None
    seed: int | None = None
    z: Sequence[Sequence[float]] | None = None


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters long")


def no_preset_in(config: Mapping[str, Any] | None) -> None:
    if config and "preset" in config:
        raise Invalid("config.preset", "a preset is named beside config, not in it")


def preset_of(preset: str | None, config: Mapping[str, Any] | None) -> str:
    """The recipe a creation starts from (the engine's default for None): named beside the
    config, never in it."""
    no_preset_in(config)
    try:
        return resolve_preset(preset)
    except ConfigError as exc:
        raise Invalid(exc.field, exc.message) from None


def request_hash(key: str | None, meaning: Mapping[str, Any]) -> str | None:
    """The request's meaning, not its spelling, as a hash for its Idempotency-Key: {}, a
    preset's fields written out and the preset's name are one request; random seeds are not
    part of it. None without a key."""
    if key is None:
        return None
    canonical = json.dumps(meaning, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def with_seed(config: TrainConfig) -> TrainConfig:
    """``config`` with a random seed drawn when none was asked for: every run is recorded
    with the seed that repeats it."""
    return config if config.seed is not None else config.replace(seed=secrets.randbits(63))
