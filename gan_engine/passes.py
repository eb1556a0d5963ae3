"""One training step's gradients for a population, in passes over its members, and how its
members draw their batches. Population (population.py) owns the parameters, Adam and the
loop; this is the step's maths between the draws and the update, written into buffers made
once, so that a step allocates (almost) nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import SimpleNamespace

import torch

from .config import TrainConfig
from .loop import derive_seed
from .stacked import Stack

# How members draw their batches: "exact" from each member's own CPU stream, as Trainer
# does; "batched" all at once from one generator on the device (see batched_generator).
DRAWS = ("exact", "batched")
# The bytes of buffers one training pass may touch on a CPU (default_chunk's estimate), so
# that a pass stays in cache: a population past it trains in chunks of members. Measured at
# one thread: tutorial 1.04-1.08x one pass of 64 at 16-32 members a pass, recommended at 8-16.
PASS_BYTES = 10 << 20


def default_chunk(config: TrainConfig) -> int:
    """Members per training pass on a CPU: as many as keep a pass's activations and
    gradients within PASS_BYTES (at least one)."""
    b, d_width = config.batch_size, config.d_hidden or config.hidden
    # Per member: G's outputs and deltas on b rows; D's on 2b rows, and again on the b fakes.
    g = 2 * b * (config.hidden * config.g_layers + config.n_points)
    d = 3 * 2 * b * (d_width * config.d_layers + config.n_points)
    return max(1, PASS_BYTES // (4 * (g + d)))


def batched_generator(
    configs: Sequence[TrainConfig], step: int, device: torch.device
) -> torch.Generator:
    """The one generator batched draws come from, seeded from every member's seed and the
    step: a population draws the same on each run and on resuming at a step, but a member's
    draws depend on its population (unlike exact draws)."""
    seeds = ",".join(str(c.seed) for c in configs)
    digest = hashlib.sha256(seeds.encode()).digest()
    seed = derive_seed(int.from_bytes(digest[:8], "little"), f"draws:{step}")
    return torch.Generator(device=device).manual_seed(seed)


class Passes:
    """Both losses' gradients for every member, into the stacks' ``grad`` buffers, a chunk
    of members at a time (``chunk``: by default all on a GPU, a cache's worth on a CPU)."""

    def __init__(
        self, config: TrainConfig, g: Stack, d: Stack, x: torch.Tensor, chunk: int | None
    ) -> None:
        self.config, self.g, self.d = config, g, d
        k, b, dev = g.k, config.batch_size, g.device
        self._x2 = (x * x).view(1, 1, -1)
        self._x2_plus_1 = self._x2 + 1.0
        # The losses' gradients at the logits, c + sigmoid / b: the constants as tensors, so
        # that no scalar is wrapped into a tensor each step.
        minimax = config.loss == "minimax"
        self._g_delta_c = torch.full((1, 1, 1), 0.0 if minimax else -1.0 / b, device=dev)
        self._g_delta_scale = -1.0 / b if minimax else 1.0 / b
        targets = torch.cat([torch.ones(b, 1), torch.zeros(b, 1)])
        self._d_delta_c = targets.mul_(-1.0 / b).to(dev)
        # Passes of equal size: 64 members of at most 35 a pass train as 32 and 32.
        most = chunk or (default_chunk(config) if dev.type == "cpu" else k)
        self.chunk = -(-k // -(-k // most))
        self._members = [slice(lo, min(lo + self.chunk, k)) for lo in range(0, k, self.chunk)]
        sizes = {m.stop - m.start for m in self._members}
        self._workspaces = {n: self._workspace(n) for n in sizes}
        self.logits = torch.empty(k, 2 * b, 1, device=dev)

    def _workspace(self, n: int) -> SimpleNamespace:
        """Every buffer a pass over n members writes (see ``stacked.Workspace``)."""
        b, dev = self.config.batch_size, self.g.device
        return SimpleNamespace(
            g=self.g.workspace(n, b),
            d=self.d.workspace(n, 2 * b),
            # D's input gradient on the fake rows, for G (D's forward is the one above).
            d_fake=self.d.workspace(n, b, outs=False),
            d_in=torch.empty(n, 2 * b, self.config.n_points, device=dev),
            sig=torch.empty(n, 2 * b, 1, device=dev),
            g_delta=torch.empty(n, b, 1, device=dev),
            d_delta=torch.empty(n, 2 * b, 1, device=dev),
        )

    def gradients(self, offsets: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Every member's gradients, from its real-curve offsets and latents; D's logits
        (K, 2B, 1), real rows then fake rows, in a buffer the next step rewrites."""
        for members in self._members:
            self._pass(members, offsets[members], z[members])
        return self.logits

    def _pass(self, members: slice, offsets: torch.Tensor, z: torch.Tensor) -> None:
        b = self.config.batch_size
        ws = self._workspaces[members.stop - members.start]
        # D's input: the real curves a x^2 + (a - 1) = (a - 1)(x^2 + 1) + x^2, then the fakes.
        torch.addcmul(self._x2, offsets, self._x2_plus_1, out=ws.d_in[:, :b])
        fake, g_inputs = self.g.forward(z, members, ws.g)
        ws.d_in[:, b:].copy_(fake)
        logits, d_inputs = self.d.forward(ws.d_in, members, ws.d)
        self.logits[members].copy_(logits)
        sig = torch.sigmoid(logits, out=ws.sig)

        # ======================= G step: on D's current weights =======================
        # d(G loss)/d(fake logits), then back through D held constant, then through G.
        # minimax: mean(log(1 - D(G(z)))) = -mean(softplus(logit)): -sigmoid / b;
        # non-saturating: -mean(log D(G(z))) = mean(softplus(-logit)): (sigmoid - 1) / b.
        g_delta = torch.add(self._g_delta_c, sig[:, b:], alpha=self._g_delta_scale, out=ws.g_delta)
        fake_inputs = [h[:, b:] for h in d_inputs]
        d_fake = self.d.input_grad(g_delta, fake_inputs, members, ws.d_fake)
        self.g.backward(d_fake, g_inputs, members, ws.g)

        # ================ D step: on the same fakes, detached from G ==================
        # d_loss = mean(softplus(-real)) + mean(softplus(fake)): d/dlogit = (sigmoid - target)/b
        d_delta = torch.add(self._d_delta_c, sig, alpha=1.0 / b, out=ws.d_delta)
        self.d.backward(d_delta, d_inputs, members, ws.d)
