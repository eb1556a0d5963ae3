"""Population figures: how close the population engine comes to one core's matrix-multiply
peak, against the JAX peer, and what a sweep gets through the service (issue 21), in one run
(not a test).

Run: .venv/bin/python benchmarks/population.py [--repeats N] [--no-service] [--no-jax]
                                                [--before DIR [--before-label TEXT]]
     .venv/bin/python benchmarks/population.py --readme   (the README's table from the JSON)

It prints, and writes to benchmarks/results/population.json:

1. the one-core peak: a 1024x1024 float32 torch.mm at one thread, GFLOP/s (the median of
   15 runs before part 2 and 5 at the start of each of its repeats: the peak meets the same
   bursts of other work as the figures it divides), and the FLOPs of one member-step of each
   preset, counted from the layer shapes on the minimal schedule (benchmarks/sweep.py
   ``flops_per_member_step``: G forward; D forward on 2B rows; D backward; D's input
   gradient on the B fake rows for G; G backward; 2 flops a multiply-add of the matrix
   products; the tutorial's is 2 244 608).
2. engine-only, in this process, one intra-op thread: GAN-steps/s (member-steps per second)
   of ``Population(configs, num_threads=1).step()`` for tutorial K = 1, 16, 64 and
   recommended K = 16 (seeds 0..K-1, after a warm-up; about GAN_STEPS[preset] member-steps a
   run, no metrics), the share of the peak, and K=64's rate against K=16's. Beside each:
   - the JAX peer (benchmarks/_jax_peer.py: vmap of JAX's vjp gradients, optax.adam, the step
     under jit, single-threaded XLA, in a child process) on the same configs when jax and
     optax are installed (`pip install -e '.[peers]'`), and Population / JAX;
   - with --before DIR, the gan_engine of another tree (e.g. the commit before an engine
     change: `git archive COMMIT | tar -x -C DIR`), imported beside this one, and
     Population / before.
   All run pinned to one CPU (sched_setaffinity; the peer's process inherits it); each
   side's CPU time over its wall time is printed too. Each side goes first in turn, and the
   configurations' order reverses every repeat: medians of --repeats.
3. through the service (unless --no-service): a real server (benchmarks/_server.py, embedded
   runner, SQLite, CURVEGAN_MAX_CONCURRENT_JOBS=2), a 64-member tutorial sweep of 3 000 steps
   and a 16-member recommended sweep of 1 000 steps (the configs' own log_every and
   checkpoint_every), each timed from the POST to the last member's finished_at (start-up
   included), as aggregate GAN-steps/s and the share of the 2-core peak (2 x part 1's);
   medians of --service-repeats, interleaved.

The server starts first and this process then takes the workers' niceness
(CURVEGAN_WORKER_NICE, 5), as in benchmarks/sweep.py: whatever else runs on the shared
machine takes the same share from every figure. About 2.5 minutes by default on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import torch
from _server import ROOT, Server, run_with_servers
from population_report import print_results, update_readme
from sweep import bench_server, flops_per_member_step, matmul_peak, run_sweep

from gan_engine import TrainConfig
from gan_engine.population import Population

RESULTS = ROOT / "benchmarks" / "results" / "population.json"
CASES = (("tutorial", 1), ("tutorial", 16), ("tutorial", 64), ("recommended", 16))
# Member-steps a timed run: ~0.3-1.5 s each, long enough to dwarf the timer, short enough
# to interleave many runs on a noisy machine. A recommended step costs ~4x a tutorial one.
GAN_STEPS = {"tutorial": 4_000, "recommended": 1_500}
WARMUP_STEPS = 30
# Far beyond what the runs take: recommended's linear schedule never reaches 0 here.
CONFIG_STEPS = 1_000_000
SERVICE_SWEEPS = (("tutorial", 64, 3_000), ("recommended", 16, 1_000))
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
# One side of part 2: (case index, steps) -> {"rate": GAN-steps/s, "cpu": s, "wall": s}.
Side = Callable[[int, int], dict[str, float]]


def configs_of(preset: str, k: int) -> list[TrainConfig]:
    return [TrainConfig.from_preset(preset, seed=i, steps=CONFIG_STEPS) for i in range(k)]


def steps_of(preset: str, k: int) -> int:
    return max(20, GAN_STEPS[preset] // k)


class JaxPeer:
    """benchmarks/_jax_peer.py in a child process, whose XLA_FLAGS are set before it imports
    jax; one JSON line per request."""

    def __init__(self) -> None:
        env = {**os.environ, "XLA_FLAGS": XLA_FLAGS, "JAX_PLATFORMS": "cpu"}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "_jax_peer.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        setup = [{"config": configs_of(p, k)[0].to_dict(), "k": k} for p, k in CASES]
        self.version = self.ask({"setup": setup})["jax"]

    def ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the JAX peer exited ({self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def time_population(pop: Any, steps: int) -> dict[str, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        pop.step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"rate": pop.k * steps / wall, "cpu": cpu, "wall": wall}


def population_side(population: Any, config: Any) -> Side:
    """Runs of ``population`` (a Population class) on CASES, built from ``config``."""
    pops = [
        population(
            [config.from_preset(p, seed=i, steps=CONFIG_STEPS) for i in range(k)], num_threads=1
        )
        for p, k in CASES
    ]
    return lambda i, steps: time_population(pops[i], steps)


def load_before(root: Path) -> tuple[Any, Any]:
    """(Population, TrainConfig) of the gan_engine in another tree (``git archive`` of an
    older commit, unpacked), imported as gan_engine_before beside this tree's."""
    package = root / "gan_engine"
    spec = importlib.util.spec_from_file_location(
        "gan_engine_before", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before: no gan_engine package in {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return importlib.import_module("gan_engine_before.population").Population, module.TrainConfig


def part_engine(
    repeats: int, sides: dict[str, Side], peak_runs: list[float]
) -> tuple[float, list[dict[str, Any]]]:
    """(the peak, a row per case); ``peak_runs`` gets every peak measured. Each side goes
    first in turn; the cases' order reverses every repeat."""
    peak_runs += matmul_peak()
    for i in range(len(CASES)):  # first kernels, caches; the JAX peer compiles here
        for side in sides.values():
            side(i, WARMUP_STEPS)
    runs: dict[tuple[int, str], list[dict[str, float]]] = {}
    order, names = list(range(len(CASES))), list(sides)
    for r in range(repeats):
        peak_runs += matmul_peak(repeats=5)
        turn = names[r % len(names) :] + names[: r % len(names)]
        for i in order if r % 2 == 0 else order[::-1]:
            for name in turn:
                runs.setdefault((i, name), []).append(sides[name](i, steps_of(*CASES[i])))
    peak = statistics.median(peak_runs)
    rows = []
    for i, (preset, k) in enumerate(CASES):
        flops = flops_per_member_step(configs_of(preset, 1)[0])[0]
        row: dict[str, Any] = {"preset": preset, "k": k, "steps_a_run": steps_of(preset, k)}
        row["flops_per_member_step"] = flops
        for name in names:
            side_runs = runs[(i, name)]
            rate = statistics.median(r["rate"] for r in side_runs)
            row[name] = {
                "rate": rate,
                "runs": [r["rate"] for r in side_runs],
                "share_of_peak": rate * flops / peak / 1e9,
                "cpu_per_wall": sum(r["cpu"] for r in side_runs)
                / sum(r["wall"] for r in side_runs),
            }
        for name in names[1:]:
            row[f"population_over_{name}"] = row["population"]["rate"] / row[name]["rate"]
        rows.append(row)
    return peak, rows


def part_service(server: Server, repeats: int, peak2: float) -> list[dict[str, Any]]:
    bodies = [
        {"preset": preset, "config": {"steps": steps}, "vary": {"seed": list(range(k))}}
        for preset, k, steps in SERVICE_SWEEPS
    ]
    runs: dict[int, list[float]] = {}
    splits: dict[int, list[str]] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for r in range(repeats):
            order = range(len(bodies)) if r % 2 == 0 else reversed(range(len(bodies)))
            for i in order:
                rate, _, split = run_sweep(client, bodies[i])
                runs.setdefault(i, []).append(rate)
                splits.setdefault(i, []).append(split)
    rows = []
    for i, (preset, k, steps) in enumerate(SERVICE_SWEEPS):
        rate = statistics.median(runs[i])
        flops = flops_per_member_step(configs_of(preset, 1)[0])[0]
        rows.append(
            {
                "preset": preset,
                "k": k,
                "steps": steps,
                "rate": rate,
                "runs": runs[i],
                "share_of_2core_peak": rate * flops / peak2 / 1e9,
                "populations": splits[i],
            }
        )
    return rows


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        model = names[0] if names else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cpu": torch.backends.cpu.get_cpu_capability(),  # the kernels the peak ran
    }


def run(args: argparse.Namespace, tmp: Path, servers: list[Server]) -> None:
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    nice = int(os.environ.get("CURVEGAN_WORKER_NICE", "5"))
    server = None
    if args.service:
        (tmp / "data").mkdir()
        server = bench_server(tmp / "data", tmp / "server.log", nice)
        servers.append(server)
        server.start()
        time.sleep(3.0)  # the pool's workers warm up as they start
    if nice:
        os.nice(nice)
    use_jax = (
        args.jax
        and importlib.util.find_spec("jax") is not None
        and importlib.util.find_spec("optax") is not None
    )
    if args.jax and not use_jax:
        print("jax or optax not installed (pip install -e '.[peers]'): no JAX peer")
    # One core for part 2, the JAX peer's process included (it inherits the mask): XLA's
    # flags keep its kernels on one thread, but its runtime still overlaps the next step's
    # dispatch with the last one's compute on a second core (CPU/wall 1.2-1.5 unpinned).
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cpus)})
    peer = JaxPeer() if use_jax else None
    try:
        sides = {"population": population_side(Population, TrainConfig)}
        if args.before:
            sides["before"] = population_side(*load_before(args.before))
        if peer is not None:
            sides["jax"] = lambda i, steps: peer.ask({"run": i, "steps": steps})
        peak_runs: list[float] = []
        peak, engine = part_engine(args.repeats, sides, peak_runs)
    finally:
        if peer is not None:
            peer.close()
        os.sched_setaffinity(0, cpus)
    by = {(r["preset"], r["k"]): r["population"]["rate"] for r in engine}
    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "niceness": nice,
        "repeats": args.repeats,
        "jax_version": peer.version if peer is not None else None,
        "before_label": args.before_label if args.before else None,
        "peak_gflops": peak,
        "peak_runs": peak_runs,
        "flops_per_member_step": {
            p: flops_per_member_step(configs_of(p, 1)[0])[0] for p in GAN_STEPS
        },
        "engine": engine,
        "k64_over_k16": by[("tutorial", 64)] / by[("tutorial", 16)],
    }
    if server is not None:
        res["service"] = part_service(server, args.service_repeats, 2 * peak)
    res["seconds"] = time.perf_counter() - t_start
    print_results(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"(measured in {res['seconds']:.0f} s; written to {args.out})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved engine runs")
    parser.add_argument("--service-repeats", type=int, default=3, help="sweeps of each")
    parser.add_argument(
        "--service", action=argparse.BooleanOptionalAction, default=True, help="part 3"
    )
    parser.add_argument(
        "--jax", action=argparse.BooleanOptionalAction, default=True, help="the JAX peer"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON written")
    parser.add_argument(
        "--before",
        type=Path,
        help="a tree whose gan_engine to measure side by side (e.g. `git archive` of the "
        "commit before an engine change, unpacked)",
    )
    parser.add_argument(
        "--before-label",
        default="the tree before the engine's change",
        help="what --before is, for the README",
    )
    parser.add_argument(
        "--readme", action="store_true", help="only update README.md's table from --out"
    )
    args = parser.parse_args()
    if args.readme:
        update_readme(json.loads(args.out.read_text()), ROOT / "README.md")
        return
    run_with_servers("curvegan-population-bench-", lambda tmp, servers: run(args, tmp, servers))


if __name__ == "__main__":
    main()
