"""Sweep figures: what training a sweep's members as populations buys over separate jobs,
what a single job gained from the population engine, and how close the best configuration
comes to the machine's matrix-multiply peak, in one run (not a test).

Run: .venv/bin/python benchmarks/sweep.py [--repeats N] [--steps N] [--separate N] [--quick]

It starts a server with the embedded runner on a free port (SQLite in a temp dir,
CURVEGAN_MAX_CONCURRENT_JOBS=2, in a process group of its own, stopped on exit, Ctrl-C
included; its log's tail is printed if something fails), then lowers its own priority to the
workers' (CURVEGAN_WORKER_NICE, 5: whatever else runs on the machine then takes the same share
from the in-process figures as from the service's) and measures the engine in this process
(one intra-op thread; the server's workers idle meanwhile), then the service. It prints:

1. the peak: a 1024x1024 float32 torch.mm at one thread, GFLOP/s (median of 15; the best
   beside it), and the FLOPs of one tutorial GAN step of one member, counted from the layer
   shapes: every multiply-add of the matrix products (2 flops each) in G's forward, D's
   forward on the 2B rows (real and fake), D's backward for D's loss, D's input gradient on
   the B fake rows for G's loss, and G's backward; bias adds, activations, losses and Adam
   are not counted (Adam is about 10 flops a parameter, 2% more).
2. engine-only population throughput, GAN-steps/s (member-steps per second), for K in
   1, 4, 16, 32, 64 tutorial members (seeds 0..K-1; about 8 000 GAN-steps a run), one
   thread, in this process: steps only, and with the metrics every 100 steps (as a sweep's
   members log them); the fraction of the peak (GAN-steps/s x flops per member-step / peak)
   for each, and for the best K. Then `recommended` members, K in 1, 8, 16, with metrics,
   and for both presets the engine's own ceiling on what a sweep can gain over separate
   jobs on the same cores: the best K's GAN-steps/s over K=1's. Runs in an order that
   reverses every repeat, medians of --repeats.
3. a single job before and after: Trainer (the autograd engine jobs used before) against
   Population([config]) (the path jobs take now), tutorial config, --single-steps steps,
   metrics every 100, in this process, interleaved (the order alternates), medians of
   --repeats + 2; then one POST /v1/jobs job of the same config through the service, POST
   to its finished_at (server clock, same machine), median of --repeats.
4. a 64-member tutorial sweep (default config, --steps steps, log_every 100,
   checkpoint_every 1000, `vary: {"seed": [0..63]}`) against separate POST /v1/jobs jobs of
   the same members: aggregate GAN-steps/s = total steps / (first POST to the last
   member's finished_at). The separate jobs are --separate of the 64 (seeds 0..n-1), all
   POSTed at once, so the pool's two workers train them two at a time: aggregate
   GAN-steps/s is what is compared. Sweep and separate rounds interleaved (the order
   alternates), medians of --repeats; how the workers split the sweep into populations,
   the ceiling from part 2, and the sweep's GAN-steps/s per core as a fraction of the peak
   and of the engine's best K. --steps defaults to 4 000: a sweep round takes 20-40 s here.
5. a 16-member `recommended` sweep (preset recommended: 4 000 steps, seeds 0..15) against
   separate jobs of the preset likewise.
Then a table of every figure next to its goal. This machine is shared and noisy (other
people's tests come and go): single figures move, which is why they are medians of
interleaved repeats, and every run is printed. About 5-6 minutes by default on 2 cores;
--quick (1 repeat, 1 000-step sweeps, 4 separate jobs) about 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch
from _server import Server, run_with_servers
from runner import Row, fmt, ts

from gan_engine import TrainConfig, Trainer
from gan_engine.population import Population

ROOT = Path(__file__).resolve().parents[1]
FINAL = ("succeeded", "failed", "cancelled")
WORKERS = 2
POP_SIZES = (1, 4, 16, 32, 64)
REC_SIZES = (1, 8, 16)
GOAL_TUTORIAL_SWEEP = 7.0
GOAL_RECOMMENDED_SWEEP = 2.5
GOAL_SINGLE_JOB = 2.0


# ------------------------------------------------------------------ the server


def bench_server(data_dir: Path, log_path: Path, worker_nice: int) -> Server:
    """The service (tests/helpers.py ``Server``) with WORKERS local workers at
    ``worker_nice`` and no other CURVEGAN_* setting, in a process group of its own (Ctrl-C in
    the terminal does not reach it; stop() does, and takes its worker processes with it),
    logging to ``log_path``."""
    return Server(
        data_dir=data_dir,
        env={
            "CURVEGAN_EXECUTOR": "local",
            "CURVEGAN_MAX_CONCURRENT_JOBS": str(WORKERS),
            "CURVEGAN_WORKER_NICE": str(worker_nice),
            "CURVEGAN_LOG_LEVEL": "warning",
        },
        log_path=log_path,
        clean_env=True,
        own_group=True,
        ready_timeout=60,
    )


# ------------------------------------------------------------------ helpers


def flops_per_member_step(config: TrainConfig) -> tuple[int, list[tuple[str, int]]]:
    """FLOPs of one GAN step of one member: 2 per multiply-add of the matrix products."""
    b = config.batch_size
    d_width = config.d_hidden or config.hidden

    def shapes(n_in: int, width: int, n_out: int, layers: int) -> list[tuple[int, int]]:
        return [(n_in, width)] + [(width, width)] * (layers - 1) + [(width, n_out)]

    g = shapes(config.n_ideas, config.hidden, config.n_points, config.g_layers)
    d = shapes(config.n_points, d_width, 1, config.d_layers)
    g_all, d_all = sum(i * o for i, o in g), sum(i * o for i, o in d)
    g_deep, d_deep = sum(i * o for i, o in g[1:]), sum(i * o for i, o in d[1:])
    macs = [
        ("G forward (B rows)", b * g_all),
        ("D forward (2B rows)", 2 * b * d_all),
        # weight gradients of every layer, and the delta back through every layer but the first
        ("D backward, D's loss (2B rows)", 2 * b * (d_all + d_deep)),
        ("D input gradient, G's loss (B rows)", b * d_all),
        ("G backward (B rows)", b * (g_all + g_deep)),
    ]
    parts = [(name, 2 * m) for name, m in macs]
    return sum(f for _, f in parts), parts


def matmul_peak(n: int = 1024, repeats: int = 15) -> list[float]:
    """GFLOP/s of an n x n float32 torch.mm at one intra-op thread, each of ``repeats``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        for _ in range(3):
            torch.mm(a, b, out=out)
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
        return rates
    finally:
        torch.set_num_threads(before)


def population_rate(base: TrainConfig, k: int, steps: int, log_every: int) -> float:
    """GAN-steps/s of Population.run() over k members of ``base`` (seeds 0..k-1; the
    construction is not timed)."""
    configs = [
        base.replace(seed=i, steps=steps, log_every=log_every, checkpoint_every=0) for i in range(k)
    ]
    pop = Population(configs)
    t0 = time.perf_counter()
    pop.run()
    return k * steps / (time.perf_counter() - t0)


def steps_for(k: int, target: int) -> int:
    """Steps of a K-member engine run: about ``target`` GAN-steps, a multiple of 100 (the
    metrics' period), 100 at least."""
    return max(100, round(target / k / 100) * 100)


@dataclass
class Engine:
    """Part 2's figures that later parts compare with."""

    best_k: int
    best: float  # GAN-steps/s, steps only
    best_logged: float  # the same K, metrics every 100
    ceiling: dict[str, float]  # preset -> best K with metrics / K=1 with metrics


def part_peak(rows: list[Row]) -> tuple[float, int]:
    rates = matmul_peak()
    peak = statistics.median(rates)
    flops, parts = flops_per_member_step(TrainConfig())
    print("1. peak and work")
    print(
        f"  torch.mm 1024x1024 float32, 1 thread: {peak:.1f} GFLOP/s median of {len(rates)}"
        f" (best {max(rates):.1f}; runs {fmt(rates, '.1f')})"
    )
    print(f"  one tutorial GAN step of one member (batch 64): {flops:,} FLOPs")
    for name, f in parts:
        print(f"    {name:38} {f:>10,}")
    print(
        "    (matrix products only, 2 flops a multiply-add; biases, activations, Adam not counted)"
    )
    rows.append(Row("matmul peak, 1 thread", f"{peak:.1f} GFLOP/s"))
    rows.append(Row("FLOPs per tutorial member-step", f"{flops:,}"))
    return peak, flops


def part_populations(repeats: int, quick: bool, peak: float, flops: int, rows: list[Row]) -> Engine:
    tutorial, recommended = TrainConfig(), TrainConfig.from_preset("recommended")
    target = 2_000 if quick else 8_000
    rec_target = 1_000 if quick else 3_000  # its steps cost about 4x the tutorial's
    # (preset, K, log_every or 0 for steps only) -> runs
    rates: dict[tuple[str, int, int], list[float]] = {}
    for r in range(repeats):
        runs = [("tutorial", tutorial, k, every, target) for k in POP_SIZES for every in (0, 100)]
        runs += [("recommended", recommended, k, 100, rec_target) for k in REC_SIZES]
        for name, base, k, every, tgt in runs if r % 2 == 0 else runs[::-1]:
            steps = steps_for(k, tgt)
            rates.setdefault((name, k, every), []).append(
                population_rate(base, k, steps, every or steps)
            )
    print(
        f"2. engine-only population throughput, GAN-steps/s (member-steps per second), "
        f"1 thread, in-process, median of {repeats}"
    )
    print(
        f"  tutorial {'K':>3} {'steps':>6}  {'steps only':>10} {'of peak':>8}   "
        f"{'metrics/100':>11} {'of peak':>8}   runs (steps only | metrics)"
    )
    best_k, best = 1, 0.0
    for k in POP_SIZES:
        plain = statistics.median(rates[("tutorial", k, 0)])
        logged = statistics.median(rates[("tutorial", k, 100)])
        if plain > best:
            best_k, best = k, plain
        print(
            f"  {'':8} {k:>3} {steps_for(k, target):>6}  {plain:>10.0f} "
            f"{plain * flops / peak / 1e9:>8.1%}   {logged:>11.0f} "
            f"{logged * flops / peak / 1e9:>8.1%}"
            f"   {fmt(rates[('tutorial', k, 0)])} | {fmt(rates[('tutorial', k, 100)])}"
        )
    best_logged = statistics.median(rates[("tutorial", best_k, 100)])
    print(
        f"  best K = {best_k}: {best:.0f} GAN-steps/s x {flops:,} FLOPs = "
        f"{best * flops / 1e9:.2f} GFLOP/s, {best * flops / peak / 1e9:.1%} of one core's "
        f"matmul peak ({best_logged * flops / peak / 1e9:.1%} with the metrics every 100)"
    )
    rec = {k: statistics.median(rates[("recommended", k, 100)]) for k in REC_SIZES}
    print(
        "  recommended, metrics/100: "
        + ", ".join(
            f"K={k} {rec[k]:.0f} (runs {fmt(rates[('recommended', k, 100)])})" for k in REC_SIZES
        )
    )
    tut_logged = {k: statistics.median(rates[("tutorial", k, 100)]) for k in POP_SIZES}
    ceiling = {
        "tutorial": max(tut_logged.values()) / tut_logged[1],
        "recommended": max(rec.values()) / rec[1],
    }
    print(
        "  the most a sweep can gain over separate jobs on the same cores, from the engine "
        "alone (best K / K=1, metrics every 100): "
        + ", ".join(f"{name} {c:.2f}x" for name, c in ceiling.items())
    )
    rows.append(Row(f"engine, best K={best_k}, GAN-steps/s per core", f"{best:.0f}"))
    rows.append(Row("  of the matmul peak", f"{best * flops / peak / 1e9:.1%}"))
    rows.append(
        Row("  of the matmul peak, metrics every 100", f"{best_logged * flops / peak / 1e9:.1%}")
    )
    return Engine(best_k, best, best_logged, ceiling)


def part_single_engine(steps: int, repeats: int) -> tuple[float, float, list[float], list[float]]:
    config = TrainConfig(seed=0, steps=steps, log_every=100, checkpoint_every=0)
    # First-use costs (imports, first kernels) out of the timed runs, as in a warm worker.
    Trainer(config.replace(steps=10, log_every=10)).run()
    Population([config.replace(steps=10, log_every=10)]).run()
    trainer: list[float] = []
    pop: list[float] = []

    def run_trainer() -> None:
        t = Trainer(config)
        t0 = time.perf_counter()
        t.run()
        trainer.append(steps / (time.perf_counter() - t0))

    def run_pop() -> None:
        p = Population([config])
        t0 = time.perf_counter()
        p.run()
        pop.append(steps / (time.perf_counter() - t0))

    for r in range(repeats):
        for action in (run_trainer, run_pop) if r % 2 == 0 else (run_pop, run_trainer):
            action()
    return statistics.median(trainer), statistics.median(pop), trainer, pop


# ------------------------------------------------------------------ service parts


def wait_jobs(client: httpx.Client, ids: list[str], timeout: float = 600.0) -> list[dict[str, Any]]:
    """Polls until every job is final (every 0.25 s: the figures come from the jobs' own
    finished_at, so polling need not be tight); raises unless all succeeded."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    done: dict[str, dict[str, Any]] = {}
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not done after {timeout:.0f} s: {pending}")
        time.sleep(0.25)
        for job_id in list(pending):
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in FINAL:
                if job["state"] != "succeeded":
                    raise RuntimeError(f"job {job_id} {job['state']}: {job['error']}")
                done[job_id] = job
                pending.remove(job_id)
            else:
                break  # the others are not done either, most likely: look again later
    return [done[i] for i in ids]


def run_separate(client: httpx.Client, bodies: list[dict[str, Any]]) -> tuple[float, int]:
    """POSTs the jobs at once; (aggregate GAN-steps/s to the last finished_at, total steps)."""
    wall0 = time.time()
    ids = []
    for body in bodies:
        r = client.post("/v1/jobs", json=body)
        r.raise_for_status()
        ids.append(r.json()["id"])
    jobs = wait_jobs(client, ids)
    total = sum(j["step"] for j in jobs)
    return total / (max(ts(j["finished_at"]) for j in jobs) - wall0), total


def populations_of(jobs: list[dict[str, Any]]) -> str:
    """How the workers split the sweep: the members each worker started together (one
    population), in order of start."""
    groups: list[tuple[float, str, int]] = []
    for job in sorted(jobs, key=lambda j: ts(j["started_at"])):
        start = ts(job["started_at"])
        for i, (t, worker, n) in enumerate(groups):
            if worker == job["worker"] and start - t < 0.5:
                groups[i] = (t, worker, n + 1)
                break
        else:
            groups.append((start, job["worker"], 1))
    names = {w: f"w{i + 1}" for i, w in enumerate(dict.fromkeys(w for _, w, _ in groups))}
    return " ".join(f"{names[w]}:{n}" for _, w, n in groups)


def run_sweep(client: httpx.Client, body: dict[str, Any]) -> tuple[float, int, str]:
    """POSTs the sweep; (aggregate GAN-steps/s to the last member's finished_at, total steps,
    the populations it ran as)."""
    wall0 = time.time()
    r = client.post("/v1/sweeps", json=body)
    r.raise_for_status()
    sweep_id = r.json()["id"]
    deadline = time.monotonic() + 900
    while True:
        time.sleep(0.25)
        state = client.get(f"/v1/sweeps/{sweep_id}").json()["state"]
        if state in FINAL:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"sweep {sweep_id} not done after 900 s")
    jobs = client.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 1000}).json()["items"]
    bad = [j for j in jobs if j["state"] != "succeeded"]
    if bad:
        raise RuntimeError(f"sweep {sweep_id}: {bad[0]['id']} {bad[0]['state']}: {bad[0]['error']}")
    total = sum(j["step"] for j in jobs)
    rate = total / (max(ts(j["finished_at"]) for j in jobs) - wall0)
    return rate, total, populations_of(jobs)


def compare(
    client: httpx.Client,
    label: str,
    sweep_body: dict[str, Any],
    separate_bodies: list[dict[str, Any]],
    n_members: int,
    repeats: int,
    goal: float,
    ceiling: float,
    rows: list[Row],
) -> float:
    """Sweep and separate rounds, interleaved; prints them and returns the sweep's median."""
    sweep: list[float] = []
    separate: list[float] = []
    splits: list[str] = []
    totals: dict[str, int] = {}

    def do_sweep() -> None:
        rate, totals["sweep"], split = run_sweep(client, sweep_body)
        sweep.append(rate)
        splits.append(split)

    def do_separate() -> None:
        rate, totals["separate"] = run_separate(client, separate_bodies)
        separate.append(rate)

    for r in range(repeats):
        for action in (do_sweep, do_separate) if r % 2 == 0 else (do_separate, do_sweep):
            action()
    a, b = statistics.median(sweep), statistics.median(separate)
    ratio = a / b
    met = ratio >= goal
    n_sep = len(separate_bodies)
    print(
        f"  sweep of {n_members}            {a:7.0f} GAN-steps/s   runs: {fmt(sweep)}   "
        f"({totals['sweep']:,} steps a run, median {totals['sweep'] / a:.1f} s)"
    )
    print(f"    populations (worker:members, in order of start): {' | '.join(splits)}")
    subset = "" if n_sep == n_members else f" of the {n_members}"
    print(
        f"  {n_sep}{subset} as separate jobs {b:7.0f} GAN-steps/s   runs: {fmt(separate)}   "
        f"({totals['separate']:,} steps a run, median {totals['separate'] / b:.1f} s; "
        f"POSTed at once, {WORKERS} at a time)"
    )
    print(
        f"  ratio {ratio:.2f}x   goal >= {goal:g}x: {'met' if met else 'MISSED'}"
        + (
            ""
            if n_sep == n_members
            else f"   (separate jobs measured on {n_sep} of the {n_members}: aggregate "
            "GAN-steps/s is what is compared)"
        )
    )
    print(f"  the engine alone allows at most {ceiling:.2f}x (part 2: best K / K=1, with metrics)")
    rows.append(Row(f"{label} sweep, GAN-steps/s", f"{a:.0f}"))
    rows.append(Row(f"{label} separate jobs ({n_sep}), GAN-steps/s", f"{b:.0f}"))
    rows.append(Row(f"{label} sweep / separate jobs", f"{ratio:.2f}x", f">= {goal:g}x", met))
    rows.append(Row("  engine's ceiling (best K / K=1)", f"{ceiling:.2f}x"))
    return a


# ------------------------------------------------------------------ main


def run(args: argparse.Namespace, tmp: Path, servers: list[Server]) -> None:
    rows: list[Row] = []
    t_start = time.perf_counter()
    nice = int(os.environ.get("CURVEGAN_WORKER_NICE", "5"))
    # The server first, at this process's niceness (its workers take the workers' own) ...
    server = bench_server(tmp / "data", tmp / "server.log", nice)
    (tmp / "data").mkdir()
    servers.append(server)
    server.start()
    time.sleep(3.0)  # the pool's workers warm up as they start (two training steps each)
    # ... then this process at the workers' niceness: what else runs on the machine takes
    # the same share from the in-process figures as from the service's.
    if nice:
        os.nice(nice)
    print(
        f"{os.cpu_count()} cores, torch {torch.__version__}, niceness {nice} (as the workers); "
        f"server log in {tmp}; {args.repeats} repeats"
    )
    peak, flops = part_peak(rows)
    print()
    engine = part_populations(args.repeats, args.quick, peak, flops, rows)
    print()
    single_repeats = args.repeats + 2
    tr, po, tr_runs, po_runs = part_single_engine(args.single_steps, single_repeats)

    with httpx.Client(base_url=server.url, timeout=30) as client:
        single_cfg = {"steps": args.single_steps, "log_every": 100, "checkpoint_every": 1000}
        service: list[float] = []
        for r in range(args.repeats):
            rate, _ = run_separate(client, [{"config": {**single_cfg, "seed": r}}])
            service.append(rate)
        sv = statistics.median(service)
        print(f"3. a single tutorial job, {args.single_steps} steps, metrics every 100, 1 thread")
        print(
            f"  before: Trainer (autograd), in-process   {tr:6.0f} steps/s   runs: {fmt(tr_runs)}"
        )
        print(
            f"  after:  Population([config]), in-process {po:6.0f} steps/s   ratio {po / tr:.2f}x"
            f"   goal >= {GOAL_SINGLE_JOB:g}x: {'met' if po / tr >= GOAL_SINGLE_JOB else 'MISSED'}"
            f"   runs: {fmt(po_runs)}"
        )
        print(
            f"  after:  POST /v1/jobs through the service {sv:5.0f} steps/s   "
            f"ratio to Trainer {sv / tr:.2f}x   goal >= {GOAL_SINGLE_JOB:g}x: "
            f"{'met' if sv / tr >= GOAL_SINGLE_JOB else 'MISSED'}   runs: {fmt(service)}"
            "   (POST to finished_at, checkpoints every 1000)"
        )
        rows.append(Row("single job, Trainer in-process, steps/s", f"{tr:.0f}"))
        rows.append(
            Row(
                "single job, Population([c]) / Trainer",
                f"{po / tr:.2f}x",
                f">= {GOAL_SINGLE_JOB:g}x",
                po / tr >= GOAL_SINGLE_JOB,
            )
        )
        rows.append(
            Row(
                "single job via the service / Trainer",
                f"{sv / tr:.2f}x",
                f">= {GOAL_SINGLE_JOB:g}x",
                sv / tr >= GOAL_SINGLE_JOB,
            )
        )
        print()

        seeds = list(range(64))
        tutorial = {"steps": args.steps, "log_every": 100, "checkpoint_every": 1000}
        print(
            f"4. tutorial sweep, 64 members x {args.steps} steps (log_every 100, "
            f"checkpoint_every 1000), against separate jobs; aggregate GAN-steps/s = total "
            f"steps / (first POST to last finished_at), median of {args.repeats}"
        )
        sweep_rate = compare(
            client,
            "tutorial 64",
            {"config": tutorial, "vary": {"seed": seeds}},
            [{"config": {**tutorial, "seed": s}} for s in seeds[: args.separate]],
            len(seeds),
            args.repeats,
            GOAL_TUTORIAL_SWEEP,
            engine.ceiling["tutorial"],
            rows,
        )
        per_core = sweep_rate / WORKERS
        print(
            f"  the sweep per core: {per_core:.0f} GAN-steps/s, "
            f"{per_core * flops / peak / 1e9:.1%} of one core's matmul peak (service, metrics "
            f"and checkpoints included; {per_core / engine.best_logged:.2f} of the engine's "
            f"K={engine.best_k} with metrics)"
        )
        rows.append(
            Row(
                "  tutorial sweep per core, of the peak",
                f"{per_core * flops / peak / 1e9:.1%}",
            )
        )
        print()

        rec_seeds = list(range(16))
        print(
            "5. recommended sweep, 16 members (preset recommended: 4 000 steps), against "
            f"separate jobs likewise, median of {args.repeats}"
        )
        rec_over = {} if args.rec_steps is None else {"steps": args.rec_steps}
        compare(
            client,
            "recommended 16",
            {"preset": "recommended", "config": rec_over, "vary": {"seed": rec_seeds}},
            [
                {"preset": "recommended", "config": {**rec_over, "seed": s}}
                for s in rec_seeds[: args.separate]
            ],
            len(rec_seeds),
            args.repeats,
            GOAL_RECOMMENDED_SWEEP,
            engine.ceiling["recommended"],
            rows,
        )

    print()
    print(f"{'figure':52} {'measured':>12}  {'goal':8}")
    print("-" * 80)
    for row in rows:
        verdict = "" if row.met is None else ("met" if row.met else "MISSED")
        print(f"{row.figure:52} {row.value:>12}  {row.goal:8} {verdict}")
    print(f"(measured in {time.perf_counter() - t_start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each")
    parser.add_argument("--steps", type=int, default=4000, help="steps of the tutorial sweep")
    parser.add_argument("--separate", type=int, default=8, help="members measured as separate jobs")
    parser.add_argument("--single-steps", type=int, default=4000, help="steps of part 3's job")
    parser.add_argument(
        "--rec-steps", type=int, default=None, help="override the recommended preset's steps"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat, 1 000-step runs, 4 separate jobs"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.steps, args.separate, args.single_steps = 1, 1000, 4, 2000
        args.rec_steps = args.rec_steps or 1000

    run_with_servers("curvegan-sweep-bench-", lambda tmp, servers: run(args, tmp, servers))


if __name__ == "__main__":
    main()
