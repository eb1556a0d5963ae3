"""What the sweep routes do: expand a base recipe and its variations into member jobs, queue
them all in one transaction, and cancel or delete them together."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from gan_engine import ConfigError, TrainConfig
from gan_engine.config import SWEEPABLE

from ..domain import (
    BEST_BY,
    Conflict,
    Invalid,
    JobRecord,
    NotFound,
    SweepRecord,
    SweepStats,
)
from ..domain.commands import (
    CreateSweep,
    check_idempotency_key,
    preset_of,
    request_hash,
    with_seed,
)
from ..domain.records import new_id
from ..domain.sweeps import grid_indices, grid_size
from ..runners import Runner
from ..store import Page, Store
from .creation import creating

# Named once for the whole sweep, never per member (the messages say why).
NOT_PER_MEMBER = {
    "preset": "the sweep's preset is named once, beside config; members vary its fields",
    "resume_from": "a sweep's members start from scratch; they cannot resume from a checkpoint",
}


@dataclasses.dataclass(frozen=True)
class _Variations:
    values: list[dict[str, Any]]  # each member's fields over the base
    # Where the request set member i's field, and member i itself, as dotted paths.
    field_path: Callable[[int, str], str]
    member_path: Callable[[int], str]


class SweepService:
    def __init__(self, store: Store, runner: Runner, *, max_queued: int, max_members: int) -> None:
        self.store = store
        self.runner = runner
        self.max_queued = max_queued
        self.max_members = max_members

    def get(self, sweep_id: str) -> tuple[SweepRecord, list[JobRecord]]:
        sweep = self.store.get_sweep(sweep_id)
        if sweep is None:
            raise NotFound(f"no sweep with id {sweep_id!r}")
        return sweep, self.store.sweep_members(sweep_id)

    def page(self, limit: int, offset: int) -> Page[tuple[SweepRecord, SweepStats]]:
        return self.store.list_sweeps(limit, offset)

    def create(self, cmd: CreateSweep) -> tuple[SweepRecord, list[JobRecord]]:
        """Queues every member as a job, all or none (or, for an Idempotency-Key seen before
        with the same request, finds the first sweep)."""
        key = cmd.idempotency_key
        check_idempotency_key(key)
        if cmd.best_by not in BEST_BY:
            better = "; ".join(f"{name}: {c.better}" for name, c in BEST_BY.items())
            raise Invalid("best_by", f"must be one of {better}; got {cmd.best_by!r}")
        base = dict(cmd.config or {})
        preset = preset_of(cmd.preset, base)
        variations = self._variations(cmd)
        configs = [_resolve(preset, base, i, variations) for i in range(len(variations.values))]
        # A grid and the same members listed are one sweep, as for jobs.
        meaning = {
            "name": cmd.name,
            "best_by": cmd.best_by,
            "configs": [c.to_dict() for c in configs],
        }
        members = [(new_id("job"), with_seed(c)) for c in configs]
        spec: dict[str, Any] = {"preset": preset, "config": base}
        if cmd.vary is not None:
            spec["vary"] = dict(cmd.vary)
        else:
            spec["members"] = [dict(m) for m in cmd.members or []]
        full = (
            f"the queue has no room for {len(members)} more jobs ({{}} waiting, "
            f"limit {self.max_queued})"
        )
        with creating("sweep", key, full.format):
            sweep, created = self.store.create_sweep(
                sweep_id=new_id("sweep"),
                name=cmd.name,
                config=spec,
                best_by=cmd.best_by,
                members=[(job_id, c.to_dict()) for job_id, c in members],
                idempotency_key=key,
                request_hash=request_hash(key, meaning),
                max_queued=self.max_queued,
            )
        if created:
            for job_id, _ in members:
                self.runner.submit(job_id)
        return sweep, self.store.sweep_members(sweep.id)

    def _variations(self, body: CreateSweep) -> _Variations:
        """Each member's fields over the base, and where each came from in the request."""
        if (body.vary is None) == (body.members is None):
            raise Invalid("vary", "give exactly one of vary (a grid) or members (a list)")
        if body.vary is not None:
            vary = body.vary
            if not vary:
                raise Invalid("vary", "must name at least one field to vary")
            for name, values in sorted(vary.items()):
                _check_field("vary", name)
                if not isinstance(values, list):
                    raise Invalid(f"vary.{name}", f"must be a list, got {type(values).__name__}")
                if not values:
                    raise Invalid(f"vary.{name}", "must list at least one value")
            # Before expanding: a grid of a billion members is refused at its size.
            size = grid_size(vary)
            if size > self.max_members:
                raise Invalid(
                    "vary",
                    f"the grid has {size} members; at most {self.max_members} "
                    "(CURVEGAN_MAX_SWEEP_MEMBERS)",
                )
            indices = grid_indices(vary)
            return _Variations(
                [{k: vary[k][i] for k, i in idx.items()} for idx in indices],
                lambda i, name: f"vary.{name}.{indices[i][name]}",
                lambda _: "vary",
            )
        members = body.members or []
        if not members:
            raise Invalid("members", "must list at least one member")
        if len(members) > self.max_members:
            raise Invalid(
                "members",
                f"has {len(members)} members; at most {self.max_members} "
                "(CURVEGAN_MAX_SWEEP_MEMBERS)",
            )
        for i, member in enumerate(members):
            for name in sorted(member):
                _check_field(f"members.{i}", name)
        return _Variations(
            [dict(m) for m in members],
            lambda i, name: f"members.{i}.{name}",
            lambda i: f"members.{i}",
        )

    def cancel(self, sweep_id: str) -> tuple[SweepRecord, list[JobRecord]]:
        """Cancels every member that is not final, as JobService.cancel does one job."""
        sweep, jobs = self.get(sweep_id)
        state = SweepStats.of_members(jobs).state
        if state.is_final:
            raise Conflict(f"sweep {sweep_id} is already {state}")
        self.store.cancel_sweep(sweep_id)
        return sweep, self.store.sweep_members(sweep_id)

    def delete(self, sweep_id: str) -> None:
        _, jobs = self.get(sweep_id)
        state = SweepStats.of_members(jobs).state
        if not state.is_final or not self.store.delete_sweep(sweep_id):
            raise Conflict(
                f"sweep {sweep_id} is {state}; only a finished sweep can be deleted "
                "(cancel it first)"
            )


def _resolve(preset: str, base: dict[str, Any], index: int, variations: _Variations) -> TrainConfig:
    """Member ``index``'s complete config, resolved as a job's is; an error names the field
    where the request set it."""
    over = variations.values[index]
    try:
        return TrainConfig.from_preset(preset, **{**base, **over})
    except ConfigError as exc:
        if exc.field in over:
            raise Invalid(variations.field_path(index, exc.field), exc.message) from None
        if exc.field in base:
            raise Invalid(f"config.{exc.field}", exc.message) from None
        # A limit on fields taken together (sizes) that this member's values broke.
        raise Invalid(
            variations.member_path(index),
            f"member {index} {json.dumps(over, sort_keys=True)}: {exc.field}: {exc.message}",
        ) from None


def _check_field(where: str, name: str) -> None:
    if name in NOT_PER_MEMBER:
        raise Invalid(f"{where}.{name}", NOT_PER_MEMBER[name])
    if name not in SWEEPABLE:
        raise Invalid(f"{where}.{name}", f"unknown field; allowed: {', '.join(sorted(SWEEPABLE))}")
