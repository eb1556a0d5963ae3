"""The JAX peer of benchmarks/population.py: the same K GANs as a ``Population`` of the same
configs, written the way JAX is meant to be used (``jax.vmap`` over the members of each
member's gradients by JAX's autodiff, ``optax.adam``, the whole step under ``jax.jit``), on
single-threaded XLA.

A child process of benchmarks/population.py, which sets XLA_FLAGS (one thread) before this
imports jax, pins it to the population's one CPU (XLA's runtime would otherwise overlap
dispatch and compute on a second core), and talks to it one JSON line at a time on
stdin/stdout, so that its runs interleave with the population's:

    {"setup": [{"config": TrainConfig.to_dict(), "k": K}, ...]}  ->  {"ok": true, "jax": "0.10.2"}
    {"run": i, "steps": n}  ->  {"rate": GAN-steps/s, "cpu": CPU s, "wall": wall s}

The first run of a configuration compiles it (population.py warms each one up first). The
real curves and the latents are drawn inside the jitted step with jax.random, one key per
member: Population draws them on the CPU per member as well, with torch's generators, so
both sides pay for their own draws.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax


def mlp_init(key: jax.Array, shapes: list[tuple[int, int]]) -> list[tuple[jax.Array, jax.Array]]:
    """torch.nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias."""
    params = []
    for n_in, n_out in shapes:
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / n_in**0.5
        params.append(
            (
                jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound),
                jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound),
            )
        )
    return params


def mlp(params: list[tuple[jax.Array, jax.Array]], h: jax.Array) -> jax.Array:
    for w, b in params[:-1]:
        h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return h @ w + b


def shapes_of(n_in: int, width: int, n_out: int, layers: int) -> list[tuple[int, int]]:
    return [(n_in, width)] + [(width, width)] * (layers - 1) + [(width, n_out)]


class Peer:
    """K members of one config: their state, and the jitted step that trains them all."""

    def __init__(self, config: dict[str, Any], k: int) -> None:
        b, n_ideas, n_points = config["batch_size"], config["n_ideas"], config["n_points"]
        g_shapes = shapes_of(n_ideas, config["hidden"], n_points, config["g_layers"])
        d_width = config["d_hidden"] or config["hidden"]
        d_shapes = shapes_of(n_points, d_width, 1, config["d_layers"])
        half = (n_points - 1) / 2
        x = (jnp.arange(n_points) - half) / half
        x2 = x * x
        minimax = config["loss"] == "minimax"
        normal = config["latent"] == "normal"
        b1, b2 = config["betas"]
        steps = config["steps"]

        def lr(base: float) -> optax.Schedule | float:
            return (
                optax.linear_schedule(base, 0.0, steps)
                if config["lr_schedule"] == "linear"
                else base
            )

        opt_g = optax.adam(lr(config["lr_g"]), b1=b1, b2=b2, eps=1e-8)
        opt_d = optax.adam(lr(config["lr_d"]), b1=b1, b2=b2, eps=1e-8)
        ema_decay, ema_warmup = config["g_ema"], config["ema_warmup"]

        def init(key: jax.Array) -> dict[str, Any]:
            kg, kd, kt = jax.random.split(key, 3)
            g, d = mlp_init(kg, g_shapes), mlp_init(kd, d_shapes)
            state = {"g": g, "d": d, "og": opt_g.init(g), "od": opt_d.init(d), "key": kt}
            if ema_decay > 0:
                state["ema"] = jax.tree.map(jnp.copy, g)  # a buffer of its own: both are donated
            return state

        def grads(g: Any, d: Any, real: jax.Array, z: jax.Array) -> tuple[Any, Any]:
            """Each model's gradient of its own loss by JAX's autodiff (vjp), on the minimal
            schedule: one D forward on the 2B rows serves both losses, as in Population.
            (jax.grad of g_loss + d_loss with stop_gradients runs D's forward on the fakes
            twice: measured 4% slower at tutorial K=16, 25% at recommended K=16.)"""
            fake, g_vjp = jax.vjp(lambda g: mlp(g, z), g)
            logits, d_vjp = jax.vjp(mlp, d, jnp.concatenate([real, fake]))
            sig = jax.nn.sigmoid(logits)
            # d_loss = mean(softplus(-real)) + mean(softplus(fake)): d/dlogit = (sig - target)/b
            grad_d = d_vjp((sig - jnp.concatenate([jnp.ones((b, 1)), jnp.zeros((b, 1))])) / b)[0]
            # minimax: mean(log(1 - D(G(z)))) = -mean(softplus(logit)): -sig / b;
            # non-saturating: -mean(log D(G(z))) = mean(softplus(-logit)): (sig - 1) / b.
            s_f = sig[b:]
            g_delta = -s_f / b if minimax else (s_f - 1.0) / b
            # Only the input gradient of this pullback is used: XLA drops its weight gradients.
            grad_in = d_vjp(jnp.concatenate([jnp.zeros((b, 1)), g_delta]))[1]
            return g_vjp(grad_in[b:])[0], grad_d

        def member_step(state: dict[str, Any], t: jax.Array) -> dict[str, Any]:
            key, k_off, k_z = jax.random.split(state["key"], 3)
            offsets = jax.random.uniform(k_off, (b, 1))
            real = x2 + offsets * (x2 + 1.0)  # a x^2 + (a - 1), a = 1 + offset
            if normal:
                z = jax.random.normal(k_z, (b, n_ideas))
            else:
                z = jax.random.uniform(k_z, (b, n_ideas), minval=-1.0, maxval=1.0)
            grad_g, grad_d = grads(state["g"], state["d"], real, z)
            up_g, og = opt_g.update(grad_g, state["og"], state["g"])
            up_d, od = opt_d.update(grad_d, state["od"], state["d"])
            g = optax.apply_updates(state["g"], up_g)
            new = {"g": g, "d": optax.apply_updates(state["d"], up_d), "og": og, "od": od}
            new["key"] = key
            if ema_decay > 0:
                decay = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t)) if ema_warmup else ema_decay
                new["ema"] = jax.tree.map(lambda e, p: e + (p - e) * (1.0 - decay), state["ema"], g)
            return new

        self.k = k
        self.state = jax.vmap(init)(jax.random.split(jax.random.key(0), k))
        self._step = jax.jit(jax.vmap(member_step, in_axes=(0, None)), donate_argnums=0)
        self.t = 0

    def run(self, steps: int) -> dict[str, float]:
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            self.state = self._step(self.state, jnp.float32(self.t))
            self.t += 1
        jax.block_until_ready(self.state)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"rate": self.k * steps / wall, "cpu": cpu, "wall": wall}


def main() -> None:
    peers: list[Peer] = []
    for line in sys.stdin:
        msg = json.loads(line)
        if "setup" in msg:
            peers = [Peer(m["config"], m["k"]) for m in msg["setup"]]
            reply: dict[str, Any] = {"ok": True, "jax": jax.__version__}
        else:
            reply = peers[msg["run"]].run(msg["steps"])
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
