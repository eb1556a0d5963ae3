"""The reference trainer: one GAN in plain PyTorch (autograd, ``torch.optim.Adam``), written to
be read: G step on D's current weights, then D step on the detached fakes.

Jobs and the CLI train with ``Population`` (population.py), whose hand-derived backward pass
and stacked Adam (stacked.py) run ~2.5x faster; this is the oracle they are tested against,
member by member, step by step (tests/gan_engine/test_population.py). Both run the one loop
(``Loop``, loop.py) and write the same checkpoints, so either resumes the other's.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .checkpoint import ADAM_KEYS, Checkpoint, CheckpointError
from .config import TrainConfig
from .data import artist_works, eval_latent, latent, x_grid
from .loop import LogRecord, Loop, RunResult, TrainingDiverged, derive_seed, intra_op_threads
from .metrics import EVAL_SAMPLES, PREVIEW_CURVES, curve_quality
from .models import Generator, build_models
from .sampling import CurveSampler


class Trainer(Loop):
    """Trains one GAN. ``step()`` does one G and one D update; ``run()`` loops with hooks."""

    def __init__(self, config: TrainConfig | None = None, *, num_threads: int | None = 1) -> None:
        config = config or TrainConfig()
        if config.seed is None:
            config = config.replace(seed=secrets.randbits(63))
        assert config.seed is not None
        self.config = config
        # The tensors are tiny: one intra-op thread measured faster than several.
        self.num_threads = num_threads
        self.x = x_grid(config.n_points)
        self.g, self.d = build_models(config, derive_seed(config.seed, "init"))
        self.g_ema = None
        if config.g_ema > 0:
            self.g_ema = copy.deepcopy(self.g).requires_grad_(False)
        self._g_params = list(self.g.parameters())
        # The library's Adam, the oracle of the hand-written one (stacked.py); fused updates
        # all of a model's tensors in one kernel: same maths, fewer ops.
        self.opt_g = torch.optim.Adam(
            self._g_params, lr=config.lr_g, betas=config.betas, fused=True
        )
        self.opt_d = torch.optim.Adam(
            self.d.parameters(), lr=config.lr_d, betas=config.betas, fused=True
        )
        self.rng = torch.Generator().manual_seed(derive_seed(config.seed, "train"))
        # A fixed evaluation batch from its own seed: evaluating never moves training's stream.
        self.eval_z = eval_latent(
            EVAL_SAMPLES, config.n_ideas, config.latent, derive_seed(config.seed, "eval")
        )
        b = config.batch_size
        self._d_targets = torch.cat([torch.ones(b, 1), torch.zeros(b, 1)])
        self.step_count = 0
        self.last_record: LogRecord | None = None
        self._preview: torch.Tensor | None = None  # see preview()
        self._last_stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ one step
    def step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One G update then one D update; returns (d_loss, g_loss, real_logits), detached."""
        cfg = self.config
        b = cfg.batch_size
        real = artist_works(b, self.x, self.rng)
        fake = self.g(latent(b, cfg.n_ideas, cfg.latent, self.rng))

        # ======================= G step: on D's current weights =======================
        # D acts as a fixed function here (frozen weights), so this loss reaches G only.
        fake_logits = self.d(fake, frozen=True)
        if cfg.loss == "minimax":
            g_loss = -F.softplus(fake_logits).mean()  # mean(log(1 - D(G(z))))
        else:
            g_loss = F.softplus(-fake_logits).mean()  # -mean(log D(G(z)))

        # ================ D step: on the same fakes, detached from G ==================
        logits = self.d(torch.cat([real, fake.detach()]))
        # Mean BCE over 2b rows, times 2 = mean(-log D(real)) + mean(-log(1 - D(fake))).
        d_loss = F.binary_cross_entropy_with_logits(logits, self._d_targets) * 2.0

        # The two losses touch disjoint parameters, so one backward pass gives each model
        # exactly its own gradient; D is still at the weights G's loss was computed with,
        # which is the tutorial's "G step, then D step on detached fakes".
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        (g_loss + d_loss).backward()
        if cfg.lr_schedule == "linear":
            # From the step count alone, so a resumed run follows the same schedule exactly.
            scale = 1.0 - self.step_count / cfg.steps
            self.opt_g.param_groups[0]["lr"] = cfg.lr_g * scale
            self.opt_d.param_groups[0]["lr"] = cfg.lr_d * scale
        self.opt_g.step()
        self.opt_d.step()
        if self.g_ema is not None:
            with torch.no_grad():
                decay = cfg.g_ema
                if cfg.ema_warmup:
                    # From the step count alone: a resumed run needs no extra state.
                    decay = min(decay, (1.0 + self.step_count) / (10.0 + self.step_count))
                torch._foreach_lerp_(list(self.g_ema.parameters()), self._g_params, 1.0 - decay)

        self.step_count += 1
        stats = (d_loss.detach(), g_loss.detach(), logits[:b].detach())
        self._last_stats = stats
        return stats

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        *,
        on_log: Callable[[LogRecord], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        should_checkpoint: Callable[[], bool] | None = None,
    ) -> RunResult:
        """Trains up to ``config.steps`` in the engine's loop (``Loop._loop``), as a population
        of one: ``on_log`` every ``log_every`` steps, ``on_checkpoint`` every
        ``checkpoint_every`` steps and once at the end, stopped or not. Raises
        TrainingDiverged, before any checkpoint of the bad weights, if losses stop being finite.
        """
        return self._loop(
            on_log=None if on_log is None else lambda records: on_log(records[0]),
            should_stop=should_stop,
            on_checkpoint=None if on_checkpoint is None else lambda ckpts: on_checkpoint(ckpts[0]),
            should_checkpoint=should_checkpoint,
        )

    # The loop's view of a trainer: one member, 0, which never leaves (it raises instead).
    @property
    def live(self) -> list[int]:
        return [0]

    @property
    def stepped(self) -> bool:
        return self._last_stats is not None

    def record_of(self, i: int) -> LogRecord | None:
        return self.last_record

    def evaluate_live(self) -> dict[int, LogRecord]:
        return {0: self.evaluate()}

    def checkpoints(self) -> dict[int, Checkpoint]:
        return {0: self.checkpoint()}

    def evaluate(self) -> LogRecord:
        """Metrics for the latest step; raises TrainingDiverged if anything is not finite."""
        if self._last_stats is None:
            raise RuntimeError("evaluate() needs at least one step() first")
        d_loss_t, g_loss_t, real_logits = self._last_stats
        d_loss, g_loss = float(d_loss_t), float(g_loss_t)
        if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
            raise TrainingDiverged(
                self.step_count, f"d_loss={d_loss}, g_loss={g_loss} are not finite"
            )
        with torch.inference_mode(), intra_op_threads(self.num_threads):
            curves = self.sampling_model()(self.eval_z)
            quality = curve_quality(curves, self.x)
            self._preview = curves[:PREVIEW_CURVES].clone()
            accuracy = float(torch.sigmoid(real_logits).mean())
        if not math.isfinite(quality.resid):
            raise TrainingDiverged(self.step_count, "generated curves are not finite")
        record = LogRecord(
            step=self.step_count,
            d_loss=d_loss,
            g_loss=g_loss,
            d_accuracy=accuracy,
            d_score=-d_loss,
            in_band=quality.in_band,
            resid=quality.resid,
            w1_a=quality.w1_a,
            a_std=quality.a_std,
        )
        self.last_record = record
        return record

    # ------------------------------------------------------------------ state
    def preview(self) -> list[list[float]]:
        """The first PREVIEW_CURVES curves of the fixed evaluation batch at the last
        evaluation: what a live figure redraws at each logged step."""
        if self._preview is None:
            raise RuntimeError("preview() needs an evaluate() first")
        return self._preview.tolist()

    def sampling_model(self) -> Generator:
        return self.g_ema if self.g_ema is not None else self.g

    def sampler(self) -> CurveSampler:
        return CurveSampler(copy.deepcopy(self.sampling_model()), self.config)

    def checkpoint(self) -> Checkpoint:
        """A snapshot (copied tensors) of everything needed to resume exactly or to sample."""
        tensors: dict[str, torch.Tensor] = {}
        models = [("g", self.g), ("d", self.d)]
        if self.g_ema is not None:
            models.append(("g_ema", self.g_ema))
        for prefix, model in models:
            for name, t in model.state_dict().items():
                tensors[f"{prefix}.{name}"] = t.detach().clone()
        for prefix, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            state = opt.state_dict()["state"]
            for i, p in enumerate(opt.param_groups[0]["params"]):
                st = state.get(i)
                for key in ADAM_KEYS:
                    if st is None:  # before the first step Adam's state is all zeros
                        value = torch.zeros(()) if key == "step" else torch.zeros_like(p)
                    else:
                        value = st[key].detach().clone()
                    tensors[f"{prefix}.{i}.{key}"] = value
        tensors["rng.train"] = self.rng.get_state()
        metrics = self.last_record.to_dict() if self.last_record else None
        if metrics is not None:
            metrics.pop("step")
        return Checkpoint(self.config, self.step_count, tensors, metrics)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, *, num_threads: int | None = 1) -> Trainer:
        """Resumes exactly where ``ckpt`` was taken (same weights, optimizer and random stream)."""
        trainer = cls(ckpt.config, num_threads=num_threads)
        t = ckpt.tensors

        def sub(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in t.items() if k.startswith(prefix)}

        trainer.g.load_state_dict(sub("g."))
        trainer.d.load_state_dict(sub("d."))
        if trainer.g_ema is not None:
            trainer.g_ema.load_state_dict(sub("g_ema."))
        for prefix, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
            sd = opt.state_dict()
            n = len(opt.param_groups[0]["params"])
            sd["state"] = {
                i: {key: t[f"{prefix}.{i}.{key}"].clone() for key in ADAM_KEYS} for i in range(n)
            }
            opt.load_state_dict(sd)
        try:
            trainer.rng.set_state(t["rng.train"].clone())
        except RuntimeError as exc:
            raise CheckpointError(f"invalid random generator state: {exc}") from None
        trainer.step_count = ckpt.step
        trainer.last_record = LogRecord.from_checkpoint(ckpt)
        return trainer
