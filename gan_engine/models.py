"""The tutorial's generator and discriminator: one-hidden-layer MLPs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig


class _MLP(nn.Module):
    """Linear -> ReLU -> Linear.

    forward calls F.linear on the layers' weights instead of calling the layers: the
    tensors are so small that per-module call overhead is a visible share of a step.
    """

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, hidden)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, inputs: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """With ``frozen`` the weights act as constants: gradients reach the inputs only."""
        w1, b1, w2, b2 = self.hidden.weight, self.hidden.bias, self.out.weight, self.out.bias
        if frozen:
            w1, b1, w2, b2 = w1.detach(), b1.detach(), w2.detach(), b2.detach()
        return F.linear(F.relu(F.linear(inputs, w1, b1)), w2, b2)


class Generator(_MLP):
    """n_ideas -> hidden -> ReLU -> n_points: an unconstrained curve of n_points values."""

    def __init__(self, n_ideas: int = 5, hidden: int = 128, n_points: int = 15) -> None:
        super().__init__(n_ideas, hidden, n_points)


class Discriminator(_MLP):
    """n_points -> hidden -> ReLU -> 1 logit.

    The tutorial ends in a sigmoid; we return the logit so losses can use logsigmoid and
    softplus, which equal the tutorial's log formulas but never produce -inf or NaN.
    """

    def __init__(self, n_points: int = 15, hidden: int = 128) -> None:
        super().__init__(n_points, hidden, 1)

    def probability(self, curves: torch.Tensor) -> torch.Tensor:
        """The tutorial's D output: probability that each curve is the artist's."""
        return torch.sigmoid(self(curves))


def build_models(config: TrainConfig, seed: int) -> tuple[Generator, Discriminator]:
    """Both networks, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = Generator(config.n_ideas, config.hidden, config.n_points)
        d = Discriminator(config.n_points, config.hidden)
    return g, d
