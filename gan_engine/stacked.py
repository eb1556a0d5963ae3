"""The kernels of a population: K MLPs' parameters stacked in one flat buffer, their batched
forward and hand-derived backward passes, and Adam over the buffer with each member's own
hyperparameters: the engine's one hand-written Adam. The reference ``Trainer``'s autograd and
``torch.optim.Adam`` are the oracles these are tested against."""

from __future__ import annotations

import math

import torch

ADAM_EPS = 1e-8  # torch.optim.Adam's default, as the reference Trainer uses it


def layer_shapes(n_in: int, width: int, n_out: int, layers: int) -> list[tuple[int, int]]:
    return [(n_in, width)] + [(width, width)] * (layers - 1) + [(width, n_out)]


class Stack:
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

    def forward(
        self, x: torch.Tensor, members: slice = slice(None)
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(K, rows, in) -> (K, rows, out), and each layer's input (post-ReLU activations);
        with ``members``, only those members (x then holds just their rows)."""
        inputs, h = [], x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            inputs.append(h)
            h = _bmm(h, w[members], b[members])
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


class Adam:
    """torch.optim.Adam (no weight decay, no amsgrad) over a stack's flat buffer, with each
    member's learning rate and betas, and torch's formula: step lr / (1 - beta1^t) over
    sqrt(v) / sqrt(1 - beta2^t) + eps, the bias corrections in double."""

    def __init__(self, stack: Stack, lrs: list[float], betas: list[tuple[float, float]]) -> None:
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
