"""K GANs of one shape trained together: stacked weights, batched matmuls and a hand-derived
backward pass. Member k follows the same maths and the same random draws as ``Trainer`` with
its config (the tutorial's step order: G step on D's current weights, then D step on the
detached fakes), to float rounding; ``Trainer`` stays the readable reference and the oracle
its gradients are tested against.

Per step, each member draws its real curves and latents from its own generator (so a member
is the same whichever population it trains in), then the population runs one batched forward
of G and D, the gradients of both losses in closed form, and one Adam update over all members'
parameters at once, with each member's own learning rates and betas.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Callable, Sequence

import torch

from .checkpoint import Checkpoint
from .config import ConfigError, TrainConfig
from .data import eval_latent, x_grid
from .metrics import EVAL_SAMPLES, curve_quality
from .models import Generator, build_models, generator_for
from .sampling import CurveSampler
from .trainer import LogRecord, RunResult, TrainingDiverged, derive_seed, intra_op_threads

# Fields that may differ between the members of one population (each is elementwise in the
# update); every other field fixes the shape or the schedule and must be the same for all.
MEMBER_FIELDS = frozenset({"seed", "lr_g", "lr_d", "betas", "g_ema"})
ADAM_EPS = 1e-8  # torch.optim.Adam's default, as in Trainer


def shape_key(config: TrainConfig) -> tuple[object, ...]:
    """Configs with equal keys can train in one population."""
    values = config.to_dict()
    return tuple(
        (name, values[name] if name != "g_ema" else values[name] > 0)
        for name in sorted(values)
        if name not in MEMBER_FIELDS - {"g_ema"}
    )


def _layer_shapes(n_in: int, width: int, n_out: int, layers: int) -> list[tuple[int, int]]:
    return [(n_in, width)] + [(width, width)] * (layers - 1) + [(width, n_out)]


class _Stack:
    """One model's parameters for all K members in one flat buffer, laid out layer by layer
    (W of every member, then b of every member, ...), so each layer's view is a contiguous
    (K, in, out) or (K, 1, out) tensor for the batched matmuls, and the optimizer updates the
    whole buffer in a handful of elementwise operations."""

    def __init__(self, k: int, shapes: list[tuple[int, int]], device: torch.device) -> None:
        self.k = k
        self.shapes = shapes
        self.size = k * sum(i * o + o for i, o in shapes)
        self.flat = torch.zeros(self.size, device=device)
        self.weights, self.biases = self.views(self.flat)
        # Views stay valid as the buffers change in place: made once, not per step.
        self.weights_t = [w.transpose(1, 2) for w in self.weights]
        self.grad = torch.zeros_like(self.flat)
        self._grad_views = self.views(self.grad)
        # Which member each element belongs to: expands per-member hyperparameters.
        member = torch.arange(k, device=device)
        parts = []
        for n_in, n_out in shapes:
            parts += [member.repeat_interleave(n_in * n_out), member.repeat_interleave(n_out)]
        self.member_of = torch.cat(parts)

    def views(self, flat: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        k = self.k
        weights, biases, at = [], [], 0
        for n_in, n_out in self.shapes:
            weights.append(flat[at : at + k * n_in * n_out].view(k, n_in, n_out))
            at += k * n_in * n_out
            biases.append(flat[at : at + k * n_out].view(k, 1, n_out))
            at += k * n_out
        return weights, biases

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(K, rows, in) -> (K, rows, out), and each layer's input (post-ReLU activations)."""
        inputs, h = [], x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            inputs.append(h)
            h = _bmm(h, w, b)
            if i < last:
                h = h.relu_()
        return h, inputs

    def backward(self, delta: torch.Tensor, inputs: list[torch.Tensor]) -> None:
        """Writes d(loss)/d(parameters) into ``self.grad``, given d(loss)/d(output)."""
        g_weights, g_biases = self._grad_views
        for i in range(len(self.weights) - 1, -1, -1):
            g_weights[i].copy_(_bmm(inputs[i].transpose(1, 2), delta))
            torch.sum(delta, dim=1, keepdim=True, out=g_biases[i])
            if i > 0:
                delta = _relu_backward(_bmm(delta, self.weights_t[i]), inputs[i])

    def input_grad(self, delta: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
        """d(loss)/d(input) with the weights held constant (D as G's loss sees it)."""
        for i in range(len(self.weights) - 1, -1, -1):
            delta = _bmm(delta, self.weights_t[i])
            if i > 0:
                delta = _relu_backward(delta, inputs[i])
        return delta

    @property
    def names(self) -> list[str]:
        """The layers' names in ``MLP.state_dict`` (and Adam's parameter order)."""
        return ["hidden"] + [f"extra.{j}" for j in range(len(self.shapes) - 2)] + ["out"]

    def member(self, flat: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s tensors from a buffer laid out like ``flat``, shaped and named as in
        ``MLP.state_dict`` (nn.Linear weights are (out, in)), in parameter order."""
        weights, biases = self.views(flat)
        state = {}
        for name, w, b in zip(self.names, weights, biases, strict=True):
            state[f"{name}.weight"] = w[i].t().contiguous().cpu()
            state[f"{name}.bias"] = b[i, 0].clone().cpu()
        return state

    def load_member(self, flat: torch.Tensor, i: int, state: dict[str, torch.Tensor]) -> None:
        """The inverse of ``member``."""
        weights, biases = self.views(flat)
        for name, w, b in zip(self.names, weights, biases, strict=True):
            w[i].copy_(state[f"{name}.weight"].t())
            b[i, 0].copy_(state[f"{name}.bias"])


def _bmm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b (+ bias) for batches of small matrices, in the orientation the batched kernel
    runs fast in. Measured (K = 32, one thread): a product whose result is narrow (15 or 1
    columns) runs 2-8x faster computed as (b^T a^T)^T, and one with an inner size of 1 (an
    outer product) is a broadcast multiply (~15x faster than bmm)."""
    if a.shape[2] == 1:
        out = a * b
        return out if bias is None else out.add_(bias)
    if b.shape[2] < a.shape[1]:
        at, bt = b.transpose(1, 2), a.transpose(1, 2)
        out = torch.bmm(at, bt) if bias is None else torch.baddbmm(bias.transpose(1, 2), at, bt)
        return out.transpose(1, 2)
    return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)


def _relu_backward(delta: torch.Tensor, relu_output: torch.Tensor) -> torch.Tensor:
    # Zero where the ReLU was off: one fused kernel, no mask tensor.
    return torch.ops.aten.threshold_backward(delta, relu_output, 0.0)


class _Adam:
    """torch.optim.Adam (no weight decay, no amsgrad) over a stack's flat buffer, with each
    member's learning rate and betas."""

    def __init__(self, stack: _Stack, lrs: list[float], betas: list[tuple[float, float]]) -> None:
        self.exp_avg = torch.zeros_like(stack.flat)
        self.exp_avg_sq = torch.zeros_like(stack.flat)
        dev = stack.flat.device
        self.member_of = stack.member_of
        self.lr = torch.tensor(lrs, dtype=torch.float64, device=dev)
        self.lr_full = self.lr.float()[self.member_of]
        self.uniform_lr = lrs[0] if len(set(lrs)) == 1 else None
        self.uniform_betas = len(set(betas)) == 1
        if self.uniform_betas:  # the common case (sweeps over seeds and learning rates)
            self.beta1, self.beta2 = betas[0]
        else:
            b = torch.tensor(betas, dtype=torch.float64, device=dev)
            self.b1_64, self.b2_64 = b[:, 0], b[:, 1]
            # 1 - beta taken in double, as torch does with its float hyperparameters: in
            # float32, 1 - 0.99 is off by 1e-6 relative, and that bias adds up.
            self.one_minus_b1 = (1.0 - b[:, 0]).float()[self.member_of]
            self.beta2_full = b[:, 1].float()[self.member_of]
            self.one_minus_b2 = (1.0 - b[:, 1]).float()[self.member_of]

    def step(self, param: torch.Tensor, grad: torch.Tensor, t: int, scale: float) -> None:
        if self.uniform_betas:
            beta1, beta2 = self.beta1, self.beta2
            self.exp_avg.lerp_(grad, 1.0 - beta1)
            self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            # The bias corrections in double, as torch.optim.Adam takes them.
            denom = self.exp_avg_sq.sqrt().div_(math.sqrt(1.0 - beta2**t)).add_(ADAM_EPS)
            if self.uniform_lr is not None:  # one learning rate: a scalar step size
                step_size = self.uniform_lr * scale / (1.0 - beta1**t)
                param.addcdiv_(self.exp_avg, denom, value=-step_size)
                return
            step = self.lr_full * (scale / (1.0 - beta1**t))
        else:
            self.exp_avg.lerp_(grad, self.one_minus_b1)
            self.exp_avg_sq.mul_(self.beta2_full).addcmul_(grad * self.one_minus_b2, grad)
            bias2_sqrt = (1.0 - self.b2_64**t).sqrt().float()[self.member_of]
            denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(ADAM_EPS)
            step = (self.lr * scale / (1.0 - self.b1_64**t)).float()[self.member_of]
        param.addcdiv_(self.exp_avg * step, denom, value=-1.0)


class Population:
    """Trains K GANs of one shape together. ``step()`` is one G and one D update of every
    member; ``run()`` loops with the same hooks as ``Trainer.run``, over lists of members."""

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        *,
        device: str | torch.device | None = None,
        num_threads: int | None = 1,
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
        dev = self.device
        self.x = x_grid(cfg.n_points).to(dev)
        self._x2 = (self.x * self.x).view(1, 1, -1)
        self._x2_plus_1 = self._x2 + 1.0
        d_width = cfg.d_hidden or cfg.hidden
        self.g = _Stack(k, _layer_shapes(cfg.n_ideas, cfg.hidden, cfg.n_points, cfg.g_layers), dev)
        self.d = _Stack(k, _layer_shapes(cfg.n_points, d_width, 1, cfg.d_layers), dev)
        for i, c in enumerate(configs):
            assert c.seed is not None
            g, d = build_models(c, derive_seed(c.seed, "init"))
            self.g.load_member(self.g.flat, i, g.state_dict())
            self.d.load_member(self.d.flat, i, d.state_dict())
        self.ema: _Stack | None = None
        if cfg.g_ema > 0:
            self.ema = _Stack(k, self.g.shapes, dev)
            self.ema.flat.copy_(self.g.flat)
            decays = {c.g_ema for c in configs}
            # One decay for all (always so for a single job): a scalar, no per-element tensor.
            self._ema_decay: float | torch.Tensor = (
                decays.pop()
                if len(decays) == 1
                else torch.tensor([c.g_ema for c in configs], device=dev)[self.g.member_of]
            )
        betas = [tuple(c.betas) for c in configs]
        self.opt_g = _Adam(self.g, [c.lr_g for c in configs], betas)  # type: ignore[arg-type]
        self.opt_d = _Adam(self.d, [c.lr_d for c in configs], betas)  # type: ignore[arg-type]
        # Each member's own training stream, as in Trainer: same seed, same draws.
        self.rngs = [torch.Generator().manual_seed(derive_seed(c.seed, "train")) for c in configs]
        self.eval_z = torch.stack(
            [
                eval_latent(EVAL_SAMPLES, cfg.n_ideas, cfg.latent, derive_seed(c.seed, "eval"))
                for c in configs
            ]  # type: ignore[arg-type]
        ).to(dev)
        b = cfg.batch_size
        self._offsets = torch.empty(k, b, 1)
        self._z = torch.empty(k, b, cfg.n_ideas)
        self._d_targets = torch.cat([torch.ones(b, 1), torch.zeros(b, 1)]).to(dev)
        self.step_count = 0
        # Members that diverged: they train on (independently, harmlessly) but report nothing.
        self.failed: dict[int, str] = {}
        self.last_records: list[LogRecord | None] = [None] * k
        self._logits: torch.Tensor | None = None

    # ------------------------------------------------------------------ one step
    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's real curves and latents, drawn as Trainer draws them."""
        cfg = self.config
        b = cfg.batch_size
        for i, rng in enumerate(self.rngs):
            torch.rand(b, 1, generator=rng, out=self._offsets[i])
            if cfg.latent == "normal":
                torch.randn(b, cfg.n_ideas, generator=rng, out=self._z[i])
            else:
                torch.rand(b, cfg.n_ideas, generator=rng, out=self._z[i])
        # The draw buffers are refilled each step, after this step has used them: no copies
        # on the CPU; another device gets its own.
        z = self._z if self.device.type == "cpu" else self._z.to(self.device)
        if cfg.latent == "uniform":
            z.mul_(2.0).sub_(1.0)
        real = torch.addcmul(self._x2, self._offsets.to(self.device), self._x2_plus_1)
        return real, z

    def step(self) -> None:
        """One G update then one D update of every member."""
        cfg = self.config
        b = cfg.batch_size
        real, z = self._draw()
        fake, g_inputs = self.g.forward(z)
        logits, d_inputs = self.d.forward(torch.cat([real, fake], dim=1))
        self._logits = logits
        sig = torch.sigmoid(logits)

        # ======================= G step: on D's current weights =======================
        # d(G loss)/d(fake logits), then back through D held constant, then through G.
        sig_fake = sig[:, b:]
        # minimax: mean(log(1 - D(G(z)))) = -mean(softplus(logit)): -sigmoid / b;
        # non-saturating: -mean(log D(G(z))) = mean(softplus(-logit)): (sigmoid - 1) / b.
        minimax = cfg.loss == "minimax"
        g_delta = sig_fake * (-1.0 / b) if minimax else (sig_fake - 1.0) * (1.0 / b)
        fake_inputs = [h[:, b:] for h in d_inputs]
        self.g.backward(self.d.input_grad(g_delta, fake_inputs), g_inputs)

        # ================ D step: on the same fakes, detached from G ==================
        # d_loss = mean(softplus(-real)) + mean(softplus(fake)): d/dlogit = (sigmoid - target)/b
        d_delta = torch.sub(sig, self._d_targets).mul_(1.0 / b)
        self.d.backward(d_delta, d_inputs)

        t = self.step_count + 1
        # From the step count alone, so a resumed run follows the same schedule exactly.
        scale = 1.0 - self.step_count / cfg.steps if cfg.lr_schedule == "linear" else 1.0
        self.opt_g.step(self.g.flat, self.g.grad, t, scale)
        self.opt_d.step(self.d.flat, self.d.grad, t, scale)
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
        """``Trainer.run`` for the whole population: ``on_log`` gets the records and
        ``on_checkpoint`` the checkpoints of the members still live, by member index. A
        member whose losses stop being finite leaves (``failed``), as does one ``drop``ped;
        the run raises TrainingDiverged only when every member diverged."""
        cfg = self.config
        stopped = False
        with intra_op_threads(self.num_threads):
            while self.step_count < cfg.steps:
                if (should_stop is not None and should_stop()) or not self.live:
                    stopped = True
                    break
                self.step()
                s = self.step_count
                if s % cfg.log_every == 0 or s == cfg.steps:
                    records = self.evaluate()
                    if on_log is not None and records:
                        on_log(records)
                wants = should_checkpoint is not None and should_checkpoint()
                periodic = cfg.checkpoint_every and s % cfg.checkpoint_every == 0
                if (
                    on_checkpoint is not None
                    and s < cfg.steps
                    and (periodic or wants)
                    and self.live
                ):
                    on_checkpoint(self.checkpoints())
            logged = self.last_records[self.live[0]] if self.live else None
            if (
                stopped
                and self._logits is not None
                and (logged is None or logged.step != self.step_count)
            ):
                records = self.evaluate()
                if on_log is not None and records:
                    on_log(records)
            if on_checkpoint is not None and self.live:
                on_checkpoint(self.checkpoints())
        last = self.last_records[self.live[0]] if self.live else None
        return RunResult(step=self.step_count, stopped=stopped, last=last)

    def evaluate(self) -> dict[int, LogRecord]:
        """Metrics of the latest step for every live member; members whose figures are not
        finite leave the population here, before any checkpoint of their weights."""
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
            curves, _ = (self.ema or self.g).forward(self.eval_z)
            d_loss, g_loss, accuracy = d_loss.tolist(), g_loss.tolist(), accuracy.tolist()
            curves = curves.cpu()
            records: dict[int, LogRecord] = {}
            for i in self.live:
                if not (math.isfinite(d_loss[i]) and math.isfinite(g_loss[i])):
                    self.failed[i] = str(
                        TrainingDiverged(
                            self.step_count,
                            f"d_loss={d_loss[i]}, g_loss={g_loss[i]} are not finite",
                        )
                    )
                    continue
                quality = curve_quality(curves[i], self.x.cpu())
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

    # ------------------------------------------------------------------ members
    def member_checkpoint(self, i: int) -> Checkpoint:
        """Member ``i`` as an ordinary single-GAN checkpoint (``Trainer``'s layout): it
        samples, downloads and resumes as a job, with ``Trainer`` or a population."""
        tensors: dict[str, torch.Tensor] = {}
        models = [("g", self.g), ("d", self.d)] + ([("g_ema", self.ema)] if self.ema else [])
        for prefix, stack in models:
            for name, value in stack.member(stack.flat, i).items():
                tensors[f"{prefix}.{name}"] = value
        step = torch.tensor(float(self.step_count))
        for prefix, stack, opt in (("opt_g", self.g, self.opt_g), ("opt_d", self.d, self.opt_d)):
            avg = list(stack.member(opt.exp_avg, i).values())
            avg_sq = list(stack.member(opt.exp_avg_sq, i).values())
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
    ) -> Population:
        """Resumes members (single-GAN checkpoints, all at one step) exactly where they were:
        weights, Adam state and random streams."""
        steps = {c.step for c in ckpts}
        if len(steps) != 1:
            raise ConfigError(
                "members", f"checkpoints of one population share a step, got {sorted(steps)}"
            )
        pop = cls([c.config for c in ckpts], device=device, num_threads=num_threads)
        for i, ckpt in enumerate(ckpts):
            t = ckpt.tensors

            def sub(prefix: str, t: dict[str, torch.Tensor] = t) -> dict[str, torch.Tensor]:
                return {k[len(prefix) :]: v for k, v in t.items() if k.startswith(prefix)}

            pop.g.load_member(pop.g.flat, i, sub("g."))
            pop.d.load_member(pop.d.flat, i, sub("d."))
            if pop.ema is not None:
                pop.ema.load_member(pop.ema.flat, i, sub("g_ema."))
            for prefix, stack, opt in (("opt_g", pop.g, pop.opt_g), ("opt_d", pop.d, pop.opt_d)):
                # Adam's state is indexed by parameter position, in the state_dict's order.
                names = [f"{n}.{kind}" for n in stack.names for kind in ("weight", "bias")]
                for key, buf in (("exp_avg", opt.exp_avg), ("exp_avg_sq", opt.exp_avg_sq)):
                    state = {name: t[f"{prefix}.{p}.{key}"] for p, name in enumerate(names)}
                    stack.load_member(buf, i, state)
            pop.rngs[i].set_state(t["rng.train"].clone())
            if ckpt.metrics:
                fields = set(LogRecord.__dataclass_fields__) - {"step"}
                if fields <= set(ckpt.metrics):
                    values = {key: ckpt.metrics[key] for key in fields}
                    pop.last_records[i] = LogRecord(step=ckpt.step, **values)
        pop.step_count = ckpts[0].step
        return pop

    def sampler(self, i: int) -> CurveSampler:
        """Member ``i``'s generator (its EMA copy when it keeps one), for sampling."""
        g: Generator = generator_for(self.configs[i])
        stack = self.ema or self.g
        state = stack.member(stack.flat, i)
        g.load_state_dict(state)
        return CurveSampler(copy.deepcopy(g).requires_grad_(False), self.configs[i])
