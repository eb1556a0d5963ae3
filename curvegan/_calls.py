"""What each endpoint sends and how its answer is read: one ``Call`` builder per endpoint,
shared by the sync and async clients (``_core.py`` sends them).

Builders check their arguments and raise UsageError before anything is sent.
"""

from __future__ import annotations

import io
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .errors import CurveganError, UnavailableError, UsageError, error_for
from .models import (
    STATES,
    Checkpoint,
    CheckpointList,
    Job,
    JobList,
    MetricRow,
    Samples,
    Sweep,
    SweepList,
)

try:  # numpy is optional: with it, samples travel as .npy and come back as arrays
    import numpy as np
except ImportError:  # pragma: no cover - exercised by the no-torch venv test
    np = None  # type: ignore[assignment]

NPY = "application/x-npy"
MAX_SEED = 2**63 - 1
# "." and ".." are refused: URL resolution would turn them into other paths.
_ID = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100}$")
# Answers that mean "busy, try later" rather than "your request is wrong".
BUSY_STATUSES = frozenset({429, 503})


@dataclass
class Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Safe to send twice: retried on connection errors and 429/503.
    idempotent: bool = False


# ---------------------------------------------------------------- argument checks
def _id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise UsageError(f"{name} must be an id string (letters, digits, _ . -), got {value!r}")
    return value


def _int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f"be in [{lo}, {hi}]" if hi is not None else f"be >= {lo}"
        raise UsageError(f"{name} must {allowed}, got {value}")
    return value


def _page(limit: int, offset: int) -> dict[str, int]:
    return {"limit": _int("limit", limit, 1, 1000), "offset": _int("offset", offset, 0)}


# ---------------------------------------------------------------- parsing
def _as(model: Any) -> Callable[[httpx.Response], Any]:
    return lambda resp: model.model_validate(resp.json())


def _none(_: httpx.Response) -> None:
    return None


def _content(resp: httpx.Response) -> bytes:
    return resp.content


def raise_for_error(resp: httpx.Response, attempts: int = 1) -> None:
    if resp.status_code >= 400:
        raise error_of(resp, attempts)


def error_of(resp: httpx.Response, attempts: int = 1) -> CurveganError:
    """The client's exception for an error response: UnavailableError for 429/503 (busy:
    worth trying later), else the ApiError subclass for the status."""
    try:
        body = resp.json()
    except ValueError:
        body = {"message": resp.text[:500] or resp.reason_phrase}
    if resp.status_code in BUSY_STATUSES:
        message = body.get("message") if isinstance(body, dict) else None
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        return UnavailableError(
            f"server busy ({resp.status_code}) after {tries}" + (f": {message}" if message else "")
        )
    return error_for(resp.status_code, body)


# ---------------------------------------------------------------- jobs
def _config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise UsageError(f"config must be a dict of engine settings, got {config!r}")
    return config


def _name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > 200:
        raise UsageError("name must be a string of at most 200 characters")
    return name


def _preset(preset: Any) -> str:
    if not isinstance(preset, str) or not preset:
        raise UsageError(f"preset must be a preset name, got {preset!r}")
    return preset


def _idempotency_key(key: str | None) -> dict[str, str]:
    # Every create carries a key, so a retry after a lost response finds the first job (or
    # sweep) instead of starting a second one.
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
        raise UsageError(f"idempotency_key must be a string of 1 to 200 characters, got {key!r}")
    return {"Idempotency-Key": key or f"curvegan-client-{uuid.uuid4()}"}


def create_job(
    config: dict[str, Any] | None,
    name: str | None,
    resume_from: str | None,
    preset: str | None,
    idempotency_key: str | None,
) -> Call:
    body: dict[str, Any] = {}
    if config is not None:
        body["config"] = _config(config)
    if name is not None:
        body["name"] = _name(name)
    if resume_from is not None:
        body["resume_from"] = _id("resume_from", resume_from)
    if preset is not None:
        body["preset"] = _preset(preset)
    headers = _idempotency_key(idempotency_key)
    return Call("POST", "/v1/jobs", _as(Job), json=body, headers=headers, idempotent=True)


def list_jobs(state: str | None, limit: int, offset: int, sweep_id: str | None = None) -> Call:
    params: dict[str, Any] = _page(limit, offset)
    if state is not None:
        if state not in STATES:
            raise UsageError(f"state must be one of {', '.join(STATES)}, got {state!r}")
        params["state"] = state
    if sweep_id is not None:
        params["sweep_id"] = _id("sweep_id", sweep_id)
    return Call("GET", "/v1/jobs", _as(JobList), params=params, idempotent=True)


def get_job(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{_id('job_id', job_id)}", _as(Job), idempotent=True)


def job_metrics(job_id: str, since_step: int, limit: int) -> Call:
    params = {
        "since_step": _int("since_step", since_step, 0),
        "limit": _int("limit", limit, 1, 100_000),
    }

    def parse(resp: httpx.Response) -> list[MetricRow]:
        return [MetricRow.model_validate(r) for r in resp.json()["items"]]

    return Call(
        "GET", f"/v1/jobs/{_id('job_id', job_id)}/metrics", parse, params=params, idempotent=True
    )


def events_path(job_id: str, since_step: int) -> tuple[str, dict[str, int]]:
    return f"/v1/jobs/{_id('job_id', job_id)}/events", {
        "since_step": _int("since_step", since_step, 0)
    }


def cancel_job(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{_id('job_id', job_id)}/cancel", _as(Job))


def delete_job(job_id: str) -> Call:
    return Call("DELETE", f"/v1/jobs/{_id('job_id', job_id)}", _none, idempotent=True)


def save_checkpoint(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{_id('job_id', job_id)}/checkpoints", _as(Checkpoint))


# ---------------------------------------------------------------- sweeps
def _field_map(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise UsageError(f"{where} must be a dict of engine config fields, got {value!r}")
    return value


def create_sweep(
    config: dict[str, Any] | None,
    vary: dict[str, Any] | None,
    members: list[dict[str, Any]] | None,
    preset: str | None,
    name: str | None,
    best_by: str | None,
    idempotency_key: str | None,
) -> Call:
    body: dict[str, Any] = {}
    if config is not None:
        body["config"] = _config(config)
    if (vary is None) == (members is None):
        raise UsageError("create_sweep needs exactly one of vary (a grid) or members (a list)")
    if vary is not None:
        grid = _field_map("vary", vary)
        if not grid:
            raise UsageError("vary must name at least one field to vary")
        body["vary"] = {}
        for field_name, values in grid.items():
            # A tuple would travel as a JSON list too; a string or a set would not mean
            # "these values in this order".
            if not isinstance(values, (list, tuple)):
                raise UsageError(f"vary[{field_name!r}] must be a list of values, got {values!r}")
            if not values:
                raise UsageError(f"vary[{field_name!r}] must list at least one value")
            body["vary"][field_name] = list(values)
    else:
        if not isinstance(members, (list, tuple)):
            raise UsageError(f"members must be a list of dicts, got {members!r}")
        if not members:
            raise UsageError("members must list at least one member")
        body["members"] = [_field_map(f"members[{i}]", m) for i, m in enumerate(members)]
    if preset is not None:
        body["preset"] = _preset(preset)
    if name is not None:
        body["name"] = _name(name)
    if best_by is not None:
        # Not checked against a list: a newer server may rank by more metrics (422 names them).
        if not isinstance(best_by, str) or not best_by:
            raise UsageError(f"best_by must be a metric name such as 'w1_a', got {best_by!r}")
        body["best_by"] = best_by
    headers = _idempotency_key(idempotency_key)
    return Call("POST", "/v1/sweeps", _as(Sweep), json=body, headers=headers, idempotent=True)


def list_sweeps(limit: int, offset: int) -> Call:
    return Call("GET", "/v1/sweeps", _as(SweepList), params=_page(limit, offset), idempotent=True)


def get_sweep(sweep_id: str) -> Call:
    return Call("GET", f"/v1/sweeps/{_id('sweep_id', sweep_id)}", _as(Sweep), idempotent=True)


def sweep_events_path(sweep_id: str) -> str:
    return f"/v1/sweeps/{_id('sweep_id', sweep_id)}/events"


def cancel_sweep(sweep_id: str) -> Call:
    # Not retried: a second cancel after a lost answer would be 409 (already final), which
    # would hide that the first one worked.
    return Call("POST", f"/v1/sweeps/{_id('sweep_id', sweep_id)}/cancel", _as(Sweep))


def delete_sweep(sweep_id: str) -> Call:
    return Call("DELETE", f"/v1/sweeps/{_id('sweep_id', sweep_id)}", _none, idempotent=True)


# ---------------------------------------------------------------- checkpoints
def list_checkpoints(job_id: str | None, limit: int, offset: int) -> Call:
    params: dict[str, Any] = _page(limit, offset)
    if job_id is not None:
        params["job_id"] = _id("job_id", job_id)
    return Call("GET", "/v1/checkpoints", _as(CheckpointList), params=params, idempotent=True)


def get_checkpoint(checkpoint_id: str) -> Call:
    return Call(
        "GET",
        f"/v1/checkpoints/{_id('checkpoint_id', checkpoint_id)}",
        _as(Checkpoint),
        idempotent=True,
    )


def download_checkpoint(checkpoint_id: str) -> Call:
    path = f"/v1/checkpoints/{_id('checkpoint_id', checkpoint_id)}/file"
    return Call("GET", path, _content, idempotent=True)


def upload_checkpoint(data: bytes | str | Path) -> Call:
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise UsageError(f"no checkpoint file at {path}")
        data = path.read_bytes()
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise UsageError("upload_checkpoint needs the file's bytes or its path")
    return Call(
        "POST",
        "/v1/checkpoints",
        _as(Checkpoint),
        content=bytes(data),
        headers={"Content-Type": "application/octet-stream"},
    )


def delete_checkpoint(checkpoint_id: str) -> Call:
    return Call(
        "DELETE", f"/v1/checkpoints/{_id('checkpoint_id', checkpoint_id)}", _none, idempotent=True
    )


# ---------------------------------------------------------------- sampling
def x_grid(n_points: int) -> list[float]:
    """Where every curve is drawn: the engine's float32 grid (gan_engine.data.x_grid),
    computed the same way, symmetric, so x[n // 2] is exactly 0.0; each value as the server's
    JSON writes it (float32's shortest decimal), so .npy and JSON answers carry one grid."""
    if n_points == 1:
        return [-1.0]
    half = (n_points - 1) / 2
    return [_shortest_f32((i - half) / half) for i in range(n_points)]


def _f32(value: float) -> float:
    # Rounded to float32 through struct: numpy is optional for the client.
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _shortest_f32(value: float) -> float:
    """The shortest decimal that reads back as ``value``'s float32 (what orjson writes)."""
    target = _f32(value)
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = f"{target:.{digits}g}"
        if _f32(float(text)) == target:
            return float(text)
    return target  # pragma: no cover - unreachable: 9 digits suffice


def sample(path: str, owner: str | None, n: int | None, seed: int | None, z: Any) -> Call:
    body: dict[str, Any] = {}
    if z is not None:
        rows = z.tolist() if hasattr(z, "tolist") else z
        if (
            not isinstance(rows, list)
            or not rows
            or not all(isinstance(r, (list, tuple)) for r in rows)
        ):
            raise UsageError("z must be a non-empty list of latent rows (lists of numbers)")
        body["z"] = [list(r) for r in rows]
        if n is not None and n != len(rows):
            raise UsageError(f"n ({n}) must equal the number of z rows ({len(rows)})")
    elif n is None:
        raise UsageError("sample needs n (the number of curves) or z")
    if n is not None:
        body["n"] = _int("n", n, 1)
    if seed is not None:
        body["seed"] = _int("seed", seed, 0, MAX_SEED)
    headers = {"Accept": NPY} if np is not None else {"Accept": "application/json"}

    def parse(resp: httpx.Response) -> Samples:
        if resp.headers.get("content-type", "").startswith(NPY):
            curves = np.load(io.BytesIO(resp.content), allow_pickle=False)
            header_seed = resp.headers.get("x-curvegan-seed") or None
            x = x_grid(curves.shape[1])
            return Samples(
                checkpoint_id=resp.headers.get("x-curvegan-checkpoint") or owner,
                x=x,
                curves=curves,
                seed=int(header_seed) if header_seed else None,
            )
        payload = resp.json()
        curves = payload["curves"]
        if np is not None:
            curves = np.asarray(curves, dtype=np.float32)
        return Samples(
            checkpoint_id=payload.get("checkpoint_id"),
            x=payload["x"],
            curves=curves,
            seed=payload.get("seed"),
        )

    # Sampling changes nothing on the server: safe to retry.
    return Call("POST", path, parse, json=body, headers=headers, idempotent=True)


def sample_checkpoint(checkpoint_id: str, n: int | None, seed: int | None, z: Any) -> Call:
    cid = _id("checkpoint_id", checkpoint_id)
    return sample(f"/v1/checkpoints/{cid}/samples", cid, n, seed, z)


def sample_job(job_id: str, n: int | None, seed: int | None, z: Any) -> Call:
    return sample(f"/v1/jobs/{_id('job_id', job_id)}/samples", None, n, seed, z)


# ---------------------------------------------------------------- figures
FIGURE_FORMATS = ("png", "svg")
MAX_FIGURE_CURVES = 64  # the server's bound (service/routers/samples.py)


def figure_format(path: str | Path) -> str:
    """A figure's format from its file name's suffix: .png or .svg."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise UsageError(f"the figure's file must end in .png or .svg, got {str(path)!r}")
    return fmt


def _figure(path: str, fmt: str, n: int, seed: int | None, size: tuple[int, int]) -> Call:
    if fmt not in FIGURE_FORMATS:
        raise UsageError(f"fmt must be one of {', '.join(FIGURE_FORMATS)}, got {fmt!r}")
    params: dict[str, Any] = {
        "n": _int("n", n, 1, MAX_FIGURE_CURVES),
        "width": _int("width", size[0], 160, 2000),
        "height": _int("height", size[1], 160, 2000),
    }
    if seed is not None:
        params["seed"] = _int("seed", seed, 0, MAX_SEED)
    # Drawing changes nothing on the server: safe to retry.
    return Call("GET", f"{path}/figure.{fmt}", _content, params=params, idempotent=True)


def checkpoint_figure(
    checkpoint_id: str, fmt: str, n: int, seed: int | None, size: tuple[int, int]
) -> Call:
    return _figure(f"/v1/checkpoints/{_id('checkpoint_id', checkpoint_id)}", fmt, n, seed, size)


def job_figure(job_id: str, fmt: str, n: int, seed: int | None, size: tuple[int, int]) -> Call:
    return _figure(f"/v1/jobs/{_id('job_id', job_id)}", fmt, n, seed, size)


# ---------------------------------------------------------------- operations
def ready() -> Call:
    return Call("GET", "/readyz", lambda resp: resp.json(), idempotent=True)
