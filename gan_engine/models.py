"""The tutorial's generator and discriminator: one-hidden-layer MLPs (deeper on request)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig


class MLP(nn.Module):
    """Linear -> ReLU -> Linear, with ``layers - 1`` more Linear -> ReLU in between.

    forward calls F.linear on the layers' weights instead of calling the layers: the
    tensors are so small that per-module call overhead is a visible share of a step.
    """

    def __init__(self, n_in: int, hidden: int, n_out: int, layers: int = 1) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, hidden)
        # Further hidden layers (extra.0, extra.1, ...) only when layers > 1: the one-layer
        # model keeps the tutorial's parameter names and initialisation order.
        self.extra = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.out = nn.Linear(hidden, n_out)
        self._layers = [self.hidden, *self.extra, self.out]

    def forward(self, inputs: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """With ``frozen`` the weights act as constants: gradients reach the inputs only."""
        h = inputs
        last = len(self._layers) - 1
        for i, layer in enumerate(self._layers):
            w, b = layer.weight, layer.bias
            if frozen:
                w, b = w.detach(), b.detach()
            h = F.linear(h, w, b)
            if i < last:
                h = F.relu(h)
        return h

    @property
    def width(self) -> int:
        return self.hidden.out_features

    def scratch(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (rows, width) buffers for ``forward_into``'s hidden activations."""
        return torch.empty(rows, self.width), torch.empty(rows, self.width)

    def forward_into(
        self, inputs: torch.Tensor, out: torch.Tensor, scratch: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        """forward(inputs) written into ``out`` (rows, n_out), with the hidden activations in
        ``scratch``: nothing is allocated per call, so chunked inference holds a fixed
        working set whatever the allocator does with freed blocks. Same kernels as forward."""
        rows = inputs.shape[0]
        h = inputs
        for i, layer in enumerate(self._layers[:-1]):
            buf = scratch[i % 2][:rows]
            torch.addmm(layer.bias, h, layer.weight.t(), out=buf)
            h = torch.relu_(buf)
        torch.addmm(self.out.bias, h, self.out.weight.t(), out=out)


class Generator(MLP):
    """n_ideas -> hidden -> ReLU -> n_points: an unconstrained curve of n_points values."""

    def __init__(
        self, n_ideas: int = 5, hidden: int = 128, n_points: int = 15, layers: int = 1
    ) -> None:
        super().__init__(n_ideas, hidden, n_points, layers)


class Discriminator(MLP):
    """n_points -> hidden -> ReLU -> 1 logit.

    The tutorial ends in a sigmoid; we return the logit so losses can use logsigmoid and
    softplus, which equal the tutorial's log formulas but never produce -inf or NaN.
    """

    def __init__(self, n_points: int = 15, hidden: int = 128, layers: int = 1) -> None:
        super().__init__(n_points, hidden, 1, layers)

    def probability(self, curves: torch.Tensor) -> torch.Tensor:
        """The tutorial's D output: probability that each curve is the artist's."""
        return torch.sigmoid(self(curves))


def generator_for(config: TrainConfig) -> Generator:
    return Generator(config.n_ideas, config.hidden, config.n_points, config.g_layers)


def discriminator_for(config: TrainConfig) -> Discriminator:
    return Discriminator(config.n_points, config.d_hidden or config.hidden, config.d_layers)


def build_models(config: TrainConfig, seed: int) -> tuple[Generator, Discriminator]:
    """Both networks, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = generator_for(config)
        d = discriminator_for(config)
    return g, d
