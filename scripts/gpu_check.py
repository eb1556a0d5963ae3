"""The GPU path, measured in one short run (under 5 minutes on an H100 or H200; GPU time is
scarce, so everything is in this one script):

1. the device, and its fp32 matrix-product peak: an 8192 x 8192 ``torch.mm`` with TF32 off
   (what fp32 populations get), the best of a few timed runs;
2. GAN-steps/s of populations on the device at K = 1 000, 4 000 and 16 000 members, for the
   tutorial and recommended presets (steps only, timed between ``torch.cuda.synchronize()``
   calls), and their share of that peak: FLOPs of one member-step, counted from the layer
   shapes as benchmarks/sweep.py ``flops_per_member_step`` does, times the rate, over the
   peak;
3. (run first) whether training on the device matches the CPU path in distribution:
   K = 64 tutorial members, 2 000 steps, on each device; the means and spreads over the
   members of the final d_loss, g_loss, d_accuracy, d_score, w1_a and in_band. On a GPU a
   population draws its batches in one batched draw on the device (not each member's CPU
   stream), so single members differ and only the distributions are compared: means within
   3 standard errors of their difference (or 0.02 absolute), spreads within a factor of 2.

    .venv/bin/python scripts/gpu_check.py results/gpu_check.json            # on the GPU
    .venv/bin/python scripts/gpu_check.py /tmp/gpu.json --device cpu --quick  # a dry run

``--quick`` uses tiny sizes throughout, to try the script on any machine. A case that runs
out of device memory is recorded as such and the run goes on; so is one skipped because
building it would pass ``--budget`` (270 s): a population is built member by member on the
CPU (about 6 ms a recommended member on this project's 2-core machine, ~100 s at K=16 000).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from sweep import flops_per_member_step  # noqa: E402

from gan_engine import Population, TrainConfig  # noqa: E402

PRESETS = ("tutorial", "recommended")
# timed_s: a rate is timed over about this long, after a few warm-up steps (kernels, the
# allocator) and a calibration.
FULL = {"ks": (1_000, 4_000, 16_000), "mm": 8192, "quality_k": 64, "quality_steps": 2000}
FULL |= {"timed_s": 3.0}
QUICK = {"ks": (4, 16), "mm": 512, "quality_k": 8, "quality_steps": 200, "timed_s": 0.5}
WARMUP_STEPS = 3
STATS = ("d_loss", "g_loss", "d_accuracy", "d_score", "w1_a", "in_band")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
        }
    else:
        info |= {"name": "cpu", "threads": torch.get_num_threads()}
    return info


def matmul_peak(device: torch.device, n: int, repeats: int = 10) -> float:
    """GFLOP/s of an n x n fp32 ``torch.mm``, TF32 off: the best of ``repeats``."""
    if device.type == "cpu":  # a dry run: populations step on one thread (num_threads=1)
        torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def configs_of(preset: str, k: int, steps: int = 1_000_000, log_every: int = 1000) -> list:
    return [
        TrainConfig.from_preset(
            preset, seed=i, steps=steps, log_every=log_every, checkpoint_every=0
        )
        for i in range(k)
    ]


def timed(pop: Population, device: torch.device, steps: int) -> float:
    """Seconds of ``steps`` steps, the device's queue drained before and after."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        pop.step()
    sync(device)
    return time.perf_counter() - t0


def rate(device: torch.device, preset: str, k: int, timed_s: float) -> dict[str, Any]:
    """GAN-steps/s (members x steps a second) of Population.step() at K = ``k``."""
    try:
        t0 = time.perf_counter()
        pop = Population(configs_of(preset, k), device=device)
        built_s = time.perf_counter() - t0
        for _ in range(WARMUP_STEPS):
            pop.step()
        steps, wall = 1, timed(pop, device, 1)
        while wall < timed_s / 10:  # calibrate on chunks that outlast the timer's noise
            steps *= 2
            wall = timed(pop, device, steps)
        steps = max(steps, round(steps * timed_s / wall))
        wall = timed(pop, device, steps)
    except torch.cuda.OutOfMemoryError as exc:
        return {"preset": preset, "k": k, "error": f"out of device memory: {exc}"[:300]}
    finally:
        pop = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "preset": preset,
        "k": k,
        "steps": steps,
        "wall_s": wall,
        "build_s": built_s,
        "gan_steps_per_s": k * steps / wall,
        "draws": "batched" if device.type != "cpu" else "exact",
    }


def final_stats(device: torch.device, k: int, steps: int, draws: str) -> dict[str, Any]:
    """Means and spreads over ``k`` tutorial members of their final records."""
    configs = configs_of("tutorial", k, steps, log_every=steps)
    pop = Population(configs, device=device, draws=draws)
    t0 = time.perf_counter()
    pop.run()
    wall = time.perf_counter() - t0
    records = [pop.record_of(i) for i in range(k)]
    finished = [r for r in records if r is not None]
    out: dict[str, Any] = {"members": k, "finished": len(finished), "wall_s": wall}
    for name in STATS:
        values = [float(getattr(r, name)) for r in finished]
        out[name] = {"mean": statistics.fmean(values), "sd": statistics.pstdev(values)}
    return out


def compare(cpu: dict[str, Any], dev: dict[str, Any]) -> dict[str, Any]:
    """Per statistic: whether the device's distribution matches the CPU's (see the top)."""
    verdicts: dict[str, Any] = {}
    for name in STATS:
        a, b = cpu[name], dev[name]
        se = math.sqrt(a["sd"] ** 2 / cpu["finished"] + b["sd"] ** 2 / dev["finished"])
        diff = abs(a["mean"] - b["mean"])
        mean_ok = diff <= max(3 * se, 0.02)
        low, high = sorted((a["sd"], b["sd"]))
        spread_ok = high <= 2 * low or high < 0.01
        verdicts[name] = {"mean_diff": diff, "se": se, "mean_ok": mean_ok, "sd_ok": spread_ok}
    verdicts["all_match"] = all(v["mean_ok"] and v["sd_ok"] for v in verdicts.values())
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write the JSON")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run anywhere")
    parser.add_argument(
        "--budget",
        type=float,
        default=270.0,
        help="seconds in all: a rate case whose build would pass it is skipped (default 270)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch.cuda is not available on this machine")
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    res: dict[str, Any] = {"quick": args.quick, **describe(device)}
    print(f"device: {res['name']} ({res['device']}), torch {res['torch']}", flush=True)

    res["peak_gflops"] = peak = matmul_peak(device, sizes["mm"])
    print(f"fp32 peak (TF32 off, {sizes['mm']}² torch.mm): {peak:,.0f} GFLOP/s", flush=True)

    res["flops_per_member_step"] = {
        p: flops_per_member_step(configs_of(p, 1)[0])[0] for p in PRESETS
    }
    k, steps = sizes["quality_k"], sizes["quality_steps"]
    print(
        f"quality: tutorial K={k}, {steps} steps, {args.device} (batched draws) against cpu "
        "(each member's own draws)",
        flush=True,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # the CPU side: its time, not its rate, counts
    on_cpu = final_stats(torch.device("cpu"), k, steps, draws="exact")
    torch.set_num_threads(threads)
    # The device side draws as populations on a GPU do (batched), also in a CPU dry run.
    on_dev = final_stats(device, k, steps, draws="batched")
    verdict = compare(on_cpu, on_dev)
    res["quality"] = {"cpu": on_cpu, "device": on_dev, "match": verdict}
    for name in STATS:
        a, b, v = on_cpu[name], on_dev[name], verdict[name]
        ok = "ok" if v["mean_ok"] and v["sd_ok"] else "DIFFERS"
        print(
            f"  {name:<10} cpu {a['mean']:+.4f} ± {a['sd']:.4f}   "
            f"{args.device} {b['mean']:+.4f} ± {b['sd']:.4f}   {ok}"
        )
    print(f"distributions match: {verdict['all_match']}")
    res["rates"] = []
    print(f"{'preset':<12} {'K':>6} {'GAN-steps/s':>14} {'share of peak':>14}  build")
    build_per_member = 0.0  # seconds, from the cases so far: building is per-member work
    for k in sizes["ks"]:
        for preset in PRESETS:
            left = args.budget - (time.perf_counter() - started)
            if build_per_member * k + 3 * sizes["timed_s"] > left:
                row = {"preset": preset, "k": k, "error": f"skipped: {left:.0f} s of budget left"}
            else:
                row = rate(device, preset, k, sizes["timed_s"])
            if "error" in row:
                print(f"{preset:<12} {k:>6} {row['error']}", flush=True)
            else:
                build_per_member = max(build_per_member, row["build_s"] / k)
                flops = res["flops_per_member_step"][preset]
                row["share_of_peak"] = row["gan_steps_per_s"] * flops / (peak * 1e9)
                print(
                    f"{preset:<12} {k:>6} {row['gan_steps_per_s']:>14,.0f} "
                    f"{row['share_of_peak']:>13.1%}  {row['build_s']:.0f} s",
                    flush=True,
                )
            res["rates"].append(row)
    res["total_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"{res['total_s']:.0f} s in all; wrote {args.out}")


if __name__ == "__main__":
    main()
