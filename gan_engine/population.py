"""K GANs of one shape trained together: stacked weights, batched matmuls and a hand-derived
backward pass. This is the engine every run trains with: a job is a population of one (or of
a sweep's members), and so is ``python -m gan_engine train``. Member k follows the same maths
and the same random draws as the autograd ``Trainer`` (reference.py) with its config (the
tutorial's step order: G step on D's current weights, then D step on the detached fakes), to
float rounding; ``Trainer`` stays the readable reference and the oracle it is tested against.

Per step, each member draws its real curves and latents from its own generator (so a member
is the same whichever population it trains in), then the population runs batched forwards
of G and D and the gradients of both losses in closed form (passes.py: a cache's worth of
members a pass on a CPU), and one Adam update over all members' G and D parameters at once,
with each member's own learning rates and betas.

On a GPU (any device but the CPU) the draws are batched by default (``draws="batched"``, which
a CPU may choose too): every member's batch in one call from one device generator, seeded
from the members' seeds. They have Trainer's distribution but not its draws, so there a
member matches its Trainer in distribution only, and resumes on draws seeded from the
members' seeds and the step (``batched_generator``).
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from .checkpoint import Checkpoint
from .config import PRESETS, ConfigError, TrainConfig
from .data import eval_latent, x_grid
from .loop import LogRecord, Loop, RunResult, TrainingDiverged, derive_seed, intra_op_threads
from .metrics import EVAL_SAMPLES, PREVIEW_CURVES, Quality, curve_quality_rows
from .models import Generator, build_models, generator_for
from .passes import DRAWS, Passes, batched_generator
from .sampling import CurveSampler
from .stacked import Adam, Stack, layer_shapes, stack_size

# Fields that may differ between the members of one population (each is elementwise in the
# update); every other field fixes the shape or the schedule and must be the same for all.
MEMBER_FIELDS = frozenset({"seed", "lr_g", "lr_d", "betas", "g_ema"})
# Members evaluated together (see Population._qualities); measured best of 1, 2, 4, 8, 32.
EVAL_CHUNK = 4
# On a GPU, where each chunk's kernels are launched from Python: thousands of members are
# evaluated in tens of chunks, not thousands (256 members' activations: ~270 MB).
DEVICE_EVAL_CHUNK = 256


# Every field's default, and the fields a population's members must share.
_DEFAULTS = TrainConfig().to_dict()
_SHAPE_FIELDS = sorted(set(_DEFAULTS) - (MEMBER_FIELDS - {"g_ema"}))


def shape_key(config: TrainConfig) -> tuple[object, ...]:
    """Configs with equal keys can train in one population."""
    return shape_key_of(config.to_dict())


def shape_key_of(config: Mapping[str, Any]) -> tuple[object, ...]:
    """``shape_key`` of a config's plain data (``TrainConfig.to_dict``, as a job stores it,
    or what ``TrainConfig.from_dict`` takes), without building and checking the config: a
    missing field takes its preset's value or its default, as ``from_dict`` fills it in."""
    preset = config.get("preset")  # none: the tutorial's recipe, which is the defaults
    recipe = PRESETS.get(preset, {}) if isinstance(preset, str) else {}
    values = {**_DEFAULTS, **recipe, **config}
    return tuple(
        (name, values[name] > 0 if name == "g_ema" else values[name]) for name in _SHAPE_FIELDS
    )


class Population(Loop):
    """Trains K GANs of one shape together. ``step()`` is one G and one D update of every
    member; ``run()`` is the engine's loop (``Loop``), with hooks over the members."""

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        *,
        device: str | torch.device | None = None,
        num_threads: int | None = 1,
        draws: str | None = None,
        chunk: int | None = None,
    ) -> None:
        if not configs:
            raise ConfigError("members", "a population needs at least one member")
        configs = [
            c if c.seed is not None else c.replace(seed=secrets.randbits(63)) for c in configs
        ]
        key = shape_key(configs[0])
        for i, c in enumerate(configs):
            if shape_key(c) != key:
                differ = [
                    name for (name, a), (_, b) in zip(shape_key(c), key, strict=True) if a != b
                ]
                raise ConfigError(
                    f"members.{i}.{differ[0]}",
                    "must be the same for every member of a population (only "
                    f"{', '.join(sorted(MEMBER_FIELDS))} may differ)",
                )
        self.configs = configs
        self.config = cfg = configs[0]
        self.k = k = len(configs)
        self.device = torch.device(device or "cpu")
        self.num_threads = num_threads
        on_cpu = self.device.type == "cpu"
        self.draws = draws or ("exact" if on_cpu else "batched")
        if self.draws not in DRAWS:
            raise ConfigError("draws", f"must be one of {', '.join(DRAWS)}, got {draws!r}")
        dev = self.device
        self.x = x_grid(cfg.n_points).to(dev)
        d_width = cfg.d_hidden or cfg.hidden
        g_shapes = layer_shapes(cfg.n_ideas, cfg.hidden, cfg.n_points, cfg.g_layers)
        d_shapes = layer_shapes(cfg.n_points, d_width, 1, cfg.d_layers)
        # G's parameters then D's in one buffer (and their gradients in another): one Adam.
        g_size = stack_size(k, g_shapes)
        self.params = torch.zeros(g_size + stack_size(k, d_shapes), device=dev)
        self.grads = torch.zeros_like(self.params)
        self.g = Stack(k, g_shapes, dev, self.params[:g_size], self.grads[:g_size])
        self.d = Stack(k, d_shapes, dev, self.params[g_size:], self.grads[g_size:])
        # Loaded on the CPU and moved once: on a GPU, thousands of members' small copies
        # would each be a transfer.
        g_flat, d_flat = torch.zeros(self.g.size), torch.zeros(self.d.size)
        for i, c in enumerate(configs):
            assert c.seed is not None
            g, d = build_models(c, derive_seed(c.seed, "init"))
            self.g.load_member(g_flat, i, g.state_dict())
            self.d.load_member(d_flat, i, d.state_dict())
        self.g.flat.copy_(g_flat)
        self.d.flat.copy_(d_flat)
        self.ema: Stack | None = None
        if cfg.g_ema > 0:
            self.ema = Stack(k, self.g.shapes, dev)
            self.ema.flat.copy_(self.g.flat)
            decays = {c.g_ema for c in configs}
            # One decay for all (always so for a single job): a scalar, no per-element tensor.
            self._ema_decay: float | torch.Tensor = (
                decays.pop()
                if len(decays) == 1
                else torch.tensor([c.g_ema for c in configs], device=dev)[self.g.member_of]
            )
        betas = [tuple(c.betas) for c in configs]
        self.opt = Adam(
            self.params,
            [(self.g, [c.lr_g for c in configs]), (self.d, [c.lr_d for c in configs])],
            betas,  # type: ignore[arg-type]
        )
        # Each model's part of Adam's state, by its name in a checkpoint.
        self._opt_parts = {
            "opt_g": (self.g, slice(0, g_size)),
            "opt_d": (self.d, slice(g_size, None)),
        }
        # Each member's own training stream, as in Trainer: same seed, same draws.
        self.rngs = [torch.Generator().manual_seed(derive_seed(c.seed, "train")) for c in configs]
        self._batched_rng = batched_generator(configs, 0, dev) if self.draws == "batched" else None
        self.eval_z = torch.stack(
            [
                eval_latent(EVAL_SAMPLES, cfg.n_ideas, cfg.latent, derive_seed(c.seed, "eval"))
                for c in configs
            ]  # type: ignore[arg-type]
        ).to(dev)
        b = cfg.batch_size
        # Exact draws are made on the CPU, one member at a time; batched ones on the device.
        draw_dev = dev if self.draws == "batched" else torch.device("cpu")
        self._offsets = torch.empty(k, b, 1, device=draw_dev)
        self._z = torch.empty(k, b, cfg.n_ideas, device=draw_dev)
        # Each member's rows of the draw buffers, made once (not per member per step).
        exact = self.draws == "exact"
        self._offset_rows = list(self._offsets) if exact else []
        self._z_rows = list(self._z) if exact else []
        self._passes = Passes(cfg, self.g, self.d, self.x, chunk)
        self.chunk = self._passes.chunk
        self.step_count = 0
        # Members that diverged: they train on (independently, harmlessly) but report nothing.
        self.failed: dict[int, str] = {}
        self.last_records: list[LogRecord | None] = [None] * k
        # Each member's PREVIEW_CURVES curves at its last evaluation (see preview()).
        self._previews: dict[int, torch.Tensor] = {}
        self._logits: torch.Tensor | None = None

    # ------------------------------------------------------------------ one step
    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's real-curve offsets (a - 1) and latents, on the device."""
        normal = self.config.latent == "normal"
        batched = self._batched_rng
        draws: Iterable[tuple[torch.Generator, torch.Tensor, torch.Tensor]]
        if batched is not None:
            # All members at once from one generator: Trainer's distribution, not its draws.
            draws = [(batched, self._offsets, self._z)]
        else:
            # Each member from its own stream, as Trainer draws them.
            draws = zip(self.rngs, self._offset_rows, self._z_rows, strict=True)
        for rng, offset, z in draws:
            # In place, the draws torch.rand and torch.randn make with out=, without their
            # dispatch layers.
            offset.uniform_(generator=rng)
            if normal:
                z.normal_(generator=rng)
            else:
                z.uniform_(generator=rng)
        # The draw buffers are refilled each step, after this step has used them: no copies
        # on the CPU; exact draws made there for another device are moved to it.
        offsets, z = self._offsets, self._z
        if batched is None and self.device.type != "cpu":
            offsets, z = offsets.to(self.device), z.to(self.device)
        if not normal:
            z.mul_(2.0).sub_(1.0)
        return offsets, z

    def step(self) -> None:
        """One G update then one D update of every member."""
        cfg = self.config
        self._logits = self._passes.gradients(*self._draw())

        t = self.step_count + 1
        # From the step count alone, so a resumed run follows the same schedule exactly.
        scale = 1.0 - self.step_count / cfg.steps if cfg.lr_schedule == "linear" else 1.0
        self.opt.step(self.params, self.grads, t, scale)
        if self.ema is not None:
            decay = self._ema_decay
            if cfg.ema_warmup:
                cap = (1.0 + self.step_count) / (10.0 + self.step_count)
                decay = min(decay, cap) if isinstance(decay, float) else decay.clamp(max=cap)
            self.ema.flat.lerp_(self.g.flat, 1.0 - decay)
        self.step_count = t

    # ------------------------------------------------------------------ the loop
    @property
    def live(self) -> list[int]:
        return [i for i in range(self.k) if i not in self.failed]

    def run(
        self,
        *,
        on_log: Callable[[dict[int, LogRecord]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[dict[int, Checkpoint]], None] | None = None,
        should_checkpoint: Callable[[], bool] | None = None,
    ) -> RunResult:
        """The engine's loop (``Loop._loop``) over the population: ``on_log`` gets the records
        and ``on_checkpoint`` the checkpoints of the members still live, by member index. A
        member whose losses stop being finite leaves (``failed``), as does one ``drop``ped or
        one that ``leave``s; the run raises TrainingDiverged only when every member diverged."""
        return self._loop(
            on_log=on_log,
            should_stop=should_stop,
            on_checkpoint=on_checkpoint,
            should_checkpoint=should_checkpoint,
        )

    @property
    def stepped(self) -> bool:
        return self._logits is not None

    def record_of(self, i: int) -> LogRecord | None:
        return self.last_records[i]

    def evaluate_live(self) -> dict[int, LogRecord]:
        return self.evaluate()

    def evaluate(self, members: Sequence[int] | None = None) -> dict[int, LogRecord]:
        """Metrics of the latest step for every live member (or those of ``members`` still
        live); members whose figures are not finite leave the population here, before any
        checkpoint of their weights."""
        if self._logits is None:
            raise RuntimeError("evaluate() needs at least one step() first")
        b = self.config.batch_size
        with torch.inference_mode(), intra_op_threads(self.num_threads):
            logits = self._logits.squeeze(-1)
            d_loss = torch.nn.functional.softplus(-logits[:, :b]).mean(
                1
            ) + torch.nn.functional.softplus(logits[:, b:]).mean(1)
            if self.config.loss == "minimax":
                g_loss = -torch.nn.functional.softplus(logits[:, b:]).mean(1)
            else:
                g_loss = torch.nn.functional.softplus(-logits[:, b:]).mean(1)
            accuracy = torch.sigmoid(logits[:, :b]).mean(1)
            d_loss, g_loss, accuracy = d_loss.tolist(), g_loss.tolist(), accuracy.tolist()
            live = self.live if members is None else [i for i in self.live if i in members]
            qualities = self._qualities(live)
            records: dict[int, LogRecord] = {}
            for i in live:
                if not (math.isfinite(d_loss[i]) and math.isfinite(g_loss[i])):
                    self.failed[i] = str(
                        TrainingDiverged(
                            self.step_count,
                            f"d_loss={d_loss[i]}, g_loss={g_loss[i]} are not finite",
                        )
                    )
                    continue
                quality = qualities[i]
                if not math.isfinite(quality.resid):
                    self.failed[i] = str(
                        TrainingDiverged(self.step_count, "generated curves are not finite")
                    )
                    continue
                record = LogRecord(
                    step=self.step_count,
                    d_loss=d_loss[i],
                    g_loss=g_loss[i],
                    d_accuracy=accuracy[i],
                    d_score=-d_loss[i],
                    in_band=quality.in_band,
                    resid=quality.resid,
                    w1_a=quality.w1_a,
                    a_std=quality.a_std,
                )
                self.last_records[i] = record
                records[i] = record
        if not self.live and all("diverged" in why for why in self.failed.values()):
            step, reason = self.step_count, self.failed[0].split(": ", 1)[-1]
            raise (
                TrainingDiverged(step, reason)
                if self.k == 1
                else TrainingDiverged(step, f"every member diverged ({reason})")
            )
        return records

    def _qualities(self, live: list[int]) -> dict[int, Quality]:
        """Curve quality of the live members on their evaluation batches, a few members at
        a time: one member's 2 048 x 128 activations are 1 MiB, and a chunk that stays in
        cache evaluated a 32-member population ~1.4x faster than all members at once."""
        stack = self.ema or self.g
        qualities: dict[int, Quality] = {}
        chunk = EVAL_CHUNK if self.device.type == "cpu" else DEVICE_EVAL_CHUNK
        for lo in range(0, self.k, chunk):
            members = [i for i in live if lo <= i < lo + chunk]
            if not members:
                continue
            part = slice(lo, lo + chunk)
            curves, _ = stack.forward(self.eval_z[part], part)
            rows = curve_quality_rows(curves[[i - lo for i in members]], self.x)
            qualities.update(zip(members, rows, strict=True))
            for i in members:
                self._previews[i] = curves[i - lo, :PREVIEW_CURVES].clone()
        return qualities

    def preview(self, i: int) -> list[list[float]]:
        """Member ``i``'s first PREVIEW_CURVES curves of its fixed evaluation batch, drawn by
        the generator it samples with at the last evaluation (``evaluate``): what a live
        figure redraws at each logged step."""
        if i not in self._previews:
            raise RuntimeError("preview() needs an evaluate() first")
        return self._previews[i].tolist()

    # ------------------------------------------------------------------ members
    def leave(self, i: int, reason: str) -> tuple[LogRecord | None, Checkpoint | None]:
        """Member ``i`` stops here while the others train on (a cancelled job): its record of
        this step when it has moved since its last one, and its checkpoint. When that record
        finds it diverged it leaves ``failed`` instead, with (None, None); a population
        with no other member left then raises TrainingDiverged, as ``run`` would."""
        record = self.evaluate([i]).get(i) if self.unlogged(i) else None
        if i in self.failed:
            return None, None
        ckpt = self.member_checkpoint(i)
        self.drop(i, reason)
        return record, ckpt

    def member_checkpoint(self, i: int) -> Checkpoint:
        """Member ``i`` as an ordinary single-GAN checkpoint (``Trainer``'s layout): it
        samples, downloads and resumes as a job, with ``Trainer`` or a population."""
        tensors: dict[str, torch.Tensor] = {}
        models = [("g", self.g), ("d", self.d)] + ([("g_ema", self.ema)] if self.ema else [])
        for prefix, stack in models:
            for name, value in stack.member(stack.flat, i).items():
                tensors[f"{prefix}.{name}"] = value
        step = torch.tensor(float(self.step_count))
        for prefix, (stack, part) in self._opt_parts.items():
            avg = list(stack.member(self.opt.exp_avg[part], i).values())
            avg_sq = list(stack.member(self.opt.exp_avg_sq[part], i).values())
            for p in range(len(avg)):
                tensors[f"{prefix}.{p}.step"] = step.clone()
                tensors[f"{prefix}.{p}.exp_avg"] = avg[p]
                tensors[f"{prefix}.{p}.exp_avg_sq"] = avg_sq[p]
        tensors["rng.train"] = self.rngs[i].get_state()
        record = self.last_records[i]
        metrics = None
        if record is not None:
            metrics = record.to_dict()
            metrics.pop("step")
        return Checkpoint(self.configs[i], self.step_count, tensors, metrics)

    def checkpoints(self) -> dict[int, Checkpoint]:
        return {i: self.member_checkpoint(i) for i in self.live}

    def drop(self, i: int, reason: str) -> None:
        """Member ``i`` leaves: it still trains (its slices of every batch cost little and
        never touch the others) but is no longer evaluated, logged or checkpointed."""
        self.failed.setdefault(i, reason)

    @classmethod
    def from_checkpoints(
        cls,
        ckpts: Sequence[Checkpoint],
        *,
        device: str | torch.device | None = None,
        num_threads: int | None = 1,
        draws: str | None = None,
        chunk: int | None = None,
    ) -> Population:
        """Resumes members (single-GAN checkpoints, all at one step) exactly where they were:
        weights, Adam state and random streams (batched draws: see batched_generator)."""
        steps = {c.step for c in ckpts}
        if len(steps) != 1:
            raise ConfigError(
                "members", f"checkpoints of one population share a step, got {sorted(steps)}"
            )
        pop = cls(
            [c.config for c in ckpts],
            device=device,
            num_threads=num_threads,
            draws=draws,
            chunk=chunk,
        )
        for i, ckpt in enumerate(ckpts):
            t = ckpt.tensors

            def sub(prefix: str, t: dict[str, torch.Tensor] = t) -> dict[str, torch.Tensor]:
                return {k[len(prefix) :]: v for k, v in t.items() if k.startswith(prefix)}

            pop.g.load_member(pop.g.flat, i, sub("g."))
            pop.d.load_member(pop.d.flat, i, sub("d."))
            if pop.ema is not None:
                pop.ema.load_member(pop.ema.flat, i, sub("g_ema."))
            for prefix, (stack, part) in pop._opt_parts.items():
                # Adam's state is indexed by parameter position, in the state_dict's order.
                names = [f"{n}.{kind}" for n in stack.names for kind in ("weight", "bias")]
                for key, buf in (("exp_avg", pop.opt.exp_avg), ("exp_avg_sq", pop.opt.exp_avg_sq)):
                    state = {name: t[f"{prefix}.{p}.{key}"] for p, name in enumerate(names)}
                    stack.load_member(buf[part], i, state)
            pop.rngs[i].set_state(t["rng.train"].clone())
            pop.last_records[i] = LogRecord.from_checkpoint(ckpt)
        pop.step_count = ckpts[0].step
        if pop._batched_rng is not None:
            pop._batched_rng = batched_generator(pop.configs, pop.step_count, pop.device)
        return pop

    def sampler(self, i: int) -> CurveSampler:
        """Member ``i``'s generator (its EMA copy when it keeps one), for sampling."""
        g: Generator = generator_for(self.configs[i])
        stack = self.ema or self.g
        state = stack.member(stack.flat, i)
        g.load_state_dict(state)
        return CurveSampler(copy.deepcopy(g).requires_grad_(False), self.configs[i])
