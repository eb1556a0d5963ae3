"""Engine speed: training steps/s next to a plain reference loop, and sampling throughput.

Run: .venv/bin/python benchmarks/engine.py [--steps N] [--repeats R]

The reference is the tutorial's algorithm written plainly (numpy data, D ending in a
sigmoid, torch.log losses, default Adam, G step then D step on detached fakes). Both loops
run in this process, one intra-op thread each, interleaved over several repeats so machine
noise hits both alike; the ratio is of medians.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch
from torch import nn

from gan_engine import TrainConfig, Trainer


def reference_steps_per_s(steps: int, cfg: TrainConfig) -> float:
    torch.manual_seed(0)
    np.random.seed(0)
    paint_points = np.vstack([np.linspace(-1, 1, cfg.n_points) for _ in range(cfg.batch_size)])

    def artist_works() -> torch.Tensor:
        a = np.random.uniform(1, 2, size=cfg.batch_size)[:, np.newaxis]
        return torch.from_numpy(a * np.power(paint_points, 2) + (a - 1)).float()

    g = nn.Sequential(
        nn.Linear(cfg.n_ideas, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.n_points)
    )
    d = nn.Sequential(
        nn.Linear(cfg.n_points, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1), nn.Sigmoid()
    )
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g)
    start = time.perf_counter()
    for _ in range(steps):
        real = artist_works()
        fake = g(torch.randn(cfg.batch_size, cfg.n_ideas))
        g_loss = torch.mean(torch.log(1.0 - d(fake)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss = -torch.mean(torch.log(d(real)) + torch.log(1.0 - d(fake.detach())))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
    return steps / (time.perf_counter() - start)


def engine_steps_per_s(steps: int, cfg: TrainConfig) -> float:
    trainer = Trainer(cfg.replace(steps=steps, seed=0))
    start = time.perf_counter()
    trainer.run()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig()
    # log_every beyond the run: the loop alone, as the reference has no evaluation.
    bare = cfg.replace(log_every=10**7, checkpoint_every=0)
    ref, eng, eng_logged = [], [], []
    reference_steps_per_s(200, cfg)  # warm-up: first-call allocations and lazy imports
    engine_steps_per_s(200, bare)
    for _ in range(args.repeats):
        ref.append(reference_steps_per_s(args.steps, cfg))
        eng.append(engine_steps_per_s(args.steps, bare))
        eng_logged.append(engine_steps_per_s(args.steps, cfg))
    r, e, el = (statistics.median(v) for v in (ref, eng, eng_logged))
    print(
        f"training, batch {cfg.batch_size}, {args.steps} steps x {args.repeats} repeats, 1 thread"
    )
    print(f"  reference loop              {r:9.0f} steps/s")
    print(f"  engine                      {e:9.0f} steps/s   ratio {e / r:.2f}x")
    print(
        f"  engine + metrics every {cfg.log_every} {el:6.0f} steps/s   ratio {el / r:.2f}x"
        "  (2 048-curve quality eval per log)"
    )
    sampler = Trainer(cfg.replace(seed=0)).sampler()
    sampler.sample(10_000, seed=0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = sampler.sample(args.samples, seed=1)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"sampling n={args.samples}: {t * 1e3:.0f} ms, {args.samples / t:,.0f} curves/s, "
        f"output {out.curves.nbytes / 2**20:.0f} MiB, process peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
