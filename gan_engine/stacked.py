"""The kernels of a population: K MLPs' parameters stacked in one flat buffer, their batched
forward and hand-derived backward passes into preallocated buffers, and Adam over G's and D's
buffer with each member's own hyperparameters (torch's fused kernel where they are shared,
elementwise otherwise). The reference ``Trainer``'s autograd and ``torch.optim.Adam`` are the
oracles these are tested against."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ADAM_EPS = 1e-8  # torch.optim.Adam's default, as the reference Trainer uses it


def layer_shapes(n_in: int, width: int, n_out: int, layers: int) -> list[tuple[int, int]]:
    return [(n_in, width)] + [(width, width)] * (layers - 1) + [(width, n_out)]


def stack_size(k: int, shapes: list[tuple[int, int]]) -> int:
    return k * sum(i * o + o for i, o in shapes)


class Stack:
    """One model's parameters for all K members in one flat buffer, laid out layer by layer
    (W of every member, then b of every member, ...), so each layer's view is a contiguous
    (K, in, out) or (K, 1, out) tensor for the batched matmuls, and the optimizer updates the
    whole buffer in a handful of elementwise operations. The passes run on a slice of the
    members (``members``) and write into a ``Workspace`` when given one."""

    def __init__(
        self,
        k: int,
        shapes: list[tuple[int, int]],
        device: torch.device,
        flat: torch.Tensor | None = None,
        grad: torch.Tensor | None = None,
    ) -> None:
        """``flat`` and ``grad``: this stack's part of larger buffers (``stack_size``) that
        one Adam updates; by default its own."""
        self.k = k
        self.shapes = shapes
        self.device = device
        self.size = stack_size(k, shapes)
        self.flat = torch.zeros(self.size, device=device) if flat is None else flat
        self.weights, self.biases = self.views(self.flat)
        self.grad = torch.zeros_like(self.flat) if grad is None else grad
        self._grad_views = self.views(self.grad)
        self._parts: dict[tuple[int | None, int | None], _Part] = {}
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

    def part(self, members: slice) -> _Part:
        """The views of ``members``' slices, made once: the views stay valid as the buffers
        change in place."""
        key = (members.start, members.stop)
        if key not in self._parts:
            g_weights, g_biases = self._grad_views
            self._parts[key] = _Part(
                weights=[w[members] for w in self.weights],
                weights_t=[w[members].transpose(1, 2) for w in self.weights],
                biases=[b[members] for b in self.biases],
                g_weights=[w[members] for w in g_weights],
                g_biases=[b[members] for b in g_biases],
            )
        return self._parts[key]

    def workspace(
        self, members: int, rows: int, *, outs: bool = True, deltas: bool = True
    ) -> Workspace:
        """Buffers for ``forward`` (outs) and for ``backward`` and ``input_grad`` (deltas)."""
        return Workspace(members, rows, self.shapes, self.device, outs=outs, deltas=deltas)

    def forward(
        self, x: torch.Tensor, members: slice = slice(None), ws: Workspace | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(n, rows, in) -> (n, rows, out), and each layer's input (post-ReLU activations),
        for the n members of ``members`` (x holds just their rows)."""
        p = self.part(members)
        ws = ws or self.workspace(x.shape[0], x.shape[1], deltas=False)
        inputs, h = [], x
        last = len(self.shapes) - 1
        for i in range(last + 1):
            inputs.append(h)
            h = _bmm(h, p.weights[i], p.biases[i], out=ws.outs[i])
            if i < last:
                h = h.relu_()
        return h, inputs

    def backward(
        self,
        delta: torch.Tensor,
        inputs: list[torch.Tensor],
        members: slice = slice(None),
        ws: Workspace | None = None,
    ) -> None:
        """Writes d(loss)/d(parameters) of ``members`` into ``self.grad``, given
        d(loss)/d(output)."""
        p = self.part(members)
        ws = ws or self.workspace(delta.shape[0], delta.shape[1], outs=False)
        for i in range(len(self.shapes) - 1, -1, -1):
            g_w = p.g_weights[i]
            if g_w.shape[2] == 1:  # (n, in, 1) has (n, 1, in)'s layout: the fast orientation
                torch.bmm(delta.transpose(1, 2), inputs[i], out=g_w.view(g_w.shape[0], 1, -1))
            else:
                torch.bmm(inputs[i].transpose(1, 2), delta, out=g_w)
            torch.sum(delta, dim=1, keepdim=True, out=p.g_biases[i])
            if i > 0:
                delta = _relu_backward(_bmm(delta, p.weights_t[i], out=ws.deltas[i]), inputs[i])

    def input_grad(
        self,
        delta: torch.Tensor,
        inputs: list[torch.Tensor],
        members: slice = slice(None),
        ws: Workspace | None = None,
    ) -> torch.Tensor:
        """d(loss)/d(input) with the weights held constant (D as G's loss sees it)."""
        p = self.part(members)
        ws = ws or self.workspace(delta.shape[0], delta.shape[1], outs=False)
        for i in range(len(self.shapes) - 1, -1, -1):
            delta = _bmm(delta, p.weights_t[i], out=ws.deltas[i])
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


@dataclass
class _Part:
    """A slice of the members' weights, their transposes, biases and gradients."""

    weights: list[torch.Tensor]
    weights_t: list[torch.Tensor]
    biases: list[torch.Tensor]
    g_weights: list[torch.Tensor]
    g_biases: list[torch.Tensor]


class Workspace:
    """The buffers one pass of ``members`` members over ``rows`` rows writes into: each
    layer's output (``outs``) and the gradient at each layer's input (``deltas``), allocated
    once. A step that allocates its megabytes afresh has them returned to the OS and faulted
    back in every step (glibc maps blocks this large): measured against a fresh workspace
    each pass, 1.18x a step at tutorial K = 1, 1.86x at K = 16, 1.38x at recommended K = 16."""

    def __init__(
        self,
        members: int,
        rows: int,
        shapes: list[tuple[int, int]],
        device: torch.device,
        *,
        outs: bool = True,
        deltas: bool = True,
    ) -> None:
        def empty(cols: int) -> torch.Tensor:
            return torch.empty(members, rows, cols, device=device)

        self.outs = [empty(n_out) for _, n_out in shapes] if outs else []
        self.deltas = [empty(n_in) for n_in, _ in shapes] if deltas else []


def _bmm(
    a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None, *, out: torch.Tensor
) -> torch.Tensor:
    """a @ b (+ bias) for batches of small matrices, into ``out``. An inner size of 1 (an
    outer product) is a broadcast multiply (~15x faster than bmm). Into a preallocated
    buffer, every product ran faster as it is than transposed ((b^T a^T)^T, once 2-8x
    faster for narrow results): 1.02-1.18x a step."""
    if a.shape[2] == 1:
        torch.mul(a, b, out=out)
        return out if bias is None else out.add_(bias)
    if bias is None:
        return torch.bmm(a, b, out=out)
    return torch.baddbmm(bias, a, b, out=out)


def _relu_backward(delta: torch.Tensor, relu_output: torch.Tensor) -> torch.Tensor:
    # Zero where the ReLU was off, in place: one fused kernel, no mask tensor.
    return torch.ops.aten.threshold_backward.grad_input(delta, relu_output, 0.0, grad_input=delta)


class Adam:
    """torch.optim.Adam (no weight decay, no amsgrad) over one buffer holding the stacks'
    parameters one after the other (G's then D's: one update for both models, half the
    operations a step), with each member's learning rate for each model and betas, and
    torch's formula: step lr / (1 - beta1^t) over sqrt(v) / sqrt(1 - beta2^t) + eps, the bias
    corrections in double."""

    def __init__(
        self,
        param: torch.Tensor,
        stacks: list[tuple[Stack, list[float]]],
        betas: list[tuple[float, float]],
    ) -> None:
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        dev = param.device
        lrs = [lr for _, model_lrs in stacks for lr in model_lrs]
        self.uniform_betas = len(set(betas)) == 1
        if self.uniform_betas:  # the common case (sweeps over seeds and learning rates)
            self.beta1, self.beta2 = betas[0]
        # One pair of betas and one learning rate per model (a job; a sweep over seeds):
        # torch's fused Adam kernel, the one Trainer's optimizer runs, in one pass over the
        # buffers (1.11-1.12x a step at K = 1 and 16), over both models or each.
        self._fused: list[tuple[slice, float]] = []
        self._t = torch.zeros((), device=dev)  # the kernel's step count, as a tensor
        if self.uniform_betas and all(len(set(model_lrs)) == 1 for _, model_lrs in stacks):
            if len(set(lrs)) == 1:
                self._fused = [(slice(None), lrs[0])]
                return
            at = 0
            for stack, model_lrs in stacks:
                self._fused.append((slice(at, at + stack.size), model_lrs[0]))
                at += stack.size
            return
        # Otherwise elementwise, each element's slot giving its model's and member's
        # learning rate and its member's betas; buffers written each step, made once.
        self._denom = torch.empty_like(param)
        self._step = torch.empty_like(param)
        k = stacks[0][0].k
        self.slot_of = torch.cat([s.member_of + j * k for j, (s, _) in enumerate(stacks)])
        self.lr = torch.tensor(lrs, dtype=torch.float64, device=dev)
        self.lr_full = self.lr.float()[self.slot_of]
        if not self.uniform_betas:
            b = torch.tensor(betas * len(stacks), dtype=torch.float64, device=dev)
            self.b1_64, self.b2_64 = b[:, 0], b[:, 1]
            # 1 - beta taken in double, as torch does with its float hyperparameters: in
            # float32, 1 - 0.99 is off by 1e-6 relative, and that bias adds up.
            self.one_minus_b1 = (1.0 - b[:, 0]).float()[self.slot_of]
            self.beta2_full = b[:, 1].float()[self.slot_of]
            self.one_minus_b2 = (1.0 - b[:, 1]).float()[self.slot_of]

    def step(self, param: torch.Tensor, grad: torch.Tensor, t: int, scale: float) -> None:
        if self._fused:
            self._t.fill_(t)
            for part, lr in self._fused:
                torch._fused_adam_(
                    [param[part]],
                    [grad[part]],
                    [self.exp_avg[part]],
                    [self.exp_avg_sq[part]],
                    [],
                    [self._t],
                    lr=lr * scale,
                    beta1=self.beta1,
                    beta2=self.beta2,
                    weight_decay=0.0,
                    eps=ADAM_EPS,
                    amsgrad=False,
                    maximize=False,
                )
            return
        denom = self._denom
        if self.uniform_betas:
            beta1, beta2 = self.beta1, self.beta2
            self.exp_avg.lerp_(grad, 1.0 - beta1)
            self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            # The bias corrections in double, as torch.optim.Adam takes them.
            torch.sqrt(self.exp_avg_sq, out=denom)
            denom.div_(math.sqrt(1.0 - beta2**t)).add_(ADAM_EPS)
            step = torch.mul(self.lr_full, scale / (1.0 - beta1**t), out=self._step)
        else:
            self.exp_avg.lerp_(grad, self.one_minus_b1)
            g2 = torch.mul(grad, self.one_minus_b2, out=self._step)
            self.exp_avg_sq.mul_(self.beta2_full).addcmul_(g2, grad)
            bias2_sqrt = (1.0 - self.b2_64**t).sqrt().float()[self.slot_of]
            torch.sqrt(self.exp_avg_sq, out=denom)
            denom.div_(bias2_sqrt).add_(ADAM_EPS)
            per_slot = (self.lr * scale / (1.0 - self.b1_64**t)).float()
            step = torch.index_select(per_slot, 0, self.slot_of, out=self._step)
        param.addcdiv_(step.mul_(self.exp_avg), denom, value=-1.0)
