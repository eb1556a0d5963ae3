"""Curve quality of the named presets, side by side: final metrics, and when each run first
meets the target (w1_a <= 0.01, in_band >= 0.99, resid <= 0.01).

Run: .venv/bin/python benchmarks/quality.py [--presets tutorial recommended] [--seeds 0 1 2 3 4]

Each seed trains every preset in turn in this process (one intra-op thread, as the engine
does), so machine noise falls on all presets alike. Metrics are the engine's own, logged every
``log_every`` steps on its fixed 2 000-curve evaluation batch (the EMA generator when on);
wall seconds include that evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from gan_engine import PRESETS, LogRecord, TrainConfig, Trainer

TARGET = {"w1_a": 0.01, "in_band": 0.99, "resid": 0.01}


def meets_target(r: LogRecord) -> bool:
    return (
        r.w1_a <= TARGET["w1_a"] and r.in_band >= TARGET["in_band"] and r.resid <= TARGET["resid"]
    )


@dataclass
class Run:
    preset: str
    seed: int
    last: LogRecord
    wall_s: float
    first_step: int | None  # first logged step meeting the target
    first_s: float | None  # wall seconds to that step


def train(preset: str, seed: int) -> Run:
    config = TrainConfig.from_preset(preset, seed=seed, checkpoint_every=0)
    trainer = Trainer(config)
    first: list[tuple[int, float]] = []
    start = time.perf_counter()

    def on_log(r: LogRecord) -> None:
        if not first and meets_target(r):
            first.append((r.step, time.perf_counter() - start))

    result = trainer.run(on_log=on_log)
    wall = time.perf_counter() - start
    assert result.last is not None
    step, at = first[0] if first else (None, None)
    return Run(preset, seed, result.last, wall, step, at)


def fmt(value: float | int | None, spec: str) -> str:
    return "never" if value is None else format(value, spec)


def table(runs: list[Run]) -> None:
    head = f"{'preset':<12} {'seed':>4} {'w1_a':>7} {'in_band':>8} {'resid':>7} {'a_std':>6} "
    head += f"{'wall s':>7}  {'target':>6} {'first at step':>13} {'first at s':>10}"
    print(head)
    print("-" * len(head))
    for preset in dict.fromkeys(r.preset for r in runs):
        mine = [r for r in runs if r.preset == preset]
        for r in mine:
            print(
                f"{preset:<12} {r.seed:>4} {r.last.w1_a:>7.4f} {r.last.in_band:>8.4f} "
                f"{r.last.resid:>7.4f} {r.last.a_std:>6.3f} {r.wall_s:>7.2f}  "
                f"{'met' if meets_target(r.last) else '-':>6} {fmt(r.first_step, 'd'):>13} "
                f"{fmt(r.first_s, '.2f'):>10}"
            )
        met = [r for r in mine if r.first_step is not None]
        first_steps = [r.first_step for r in met if r.first_step is not None]
        first_s = [r.first_s for r in met if r.first_s is not None]
        print(
            f"{'  median':<12} {'':>4} {statistics.median(r.last.w1_a for r in mine):>7.4f} "
            f"{statistics.median(r.last.in_band for r in mine):>8.4f} "
            f"{statistics.median(r.last.resid for r in mine):>7.4f} "
            f"{statistics.median(r.last.a_std for r in mine):>6.3f} "
            f"{statistics.median(r.wall_s for r in mine):>7.2f}  "
            f"{sum(meets_target(r.last) for r in mine)}/{len(mine):<4} "
            f"{fmt(statistics.median(first_steps) if first_steps else None, '.0f'):>13} "
            f"{fmt(statistics.median(first_s) if first_s else None, '.2f'):>10}"
        )
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    print(f"target: w1_a <= {TARGET['w1_a']}, in_band >= {TARGET['in_band']}, ", end="")
    print(f"resid <= {TARGET['resid']} (real data: a_std {1 / 12**0.5:.3f})")
    for preset in args.presets:
        cfg = TrainConfig.from_preset(preset)
        print(
            f"{preset}: {cfg.steps} steps, batch {cfg.batch_size}, hidden {cfg.hidden}, "
            f"lr {cfg.lr_g:g}/{cfg.lr_d:g}, betas {cfg.betas}, {cfg.loss}, {cfg.latent} latent, "
            f"g_ema {cfg.g_ema:g}, {cfg.lr_schedule} lr"
        )
    print()
    runs = [train(preset, seed) for seed in args.seeds for preset in args.presets]
    table(runs)
    walls = {p: statistics.median(r.wall_s for r in runs if r.preset == p) for p in args.presets}
    if "tutorial" in walls:
        for preset, wall in walls.items():
            if preset != "tutorial":
                print(f"{preset} median wall time / tutorial's: {wall / walls['tutorial']:.2f}")


if __name__ == "__main__":
    main()
