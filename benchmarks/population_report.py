"""benchmarks/population.py's figures as it prints them, and as the README's "Population
figures" table, from its JSON (benchmarks/results/population.json): `python
benchmarks/population.py --readme` rewrites the part of README.md between the two markers
below and nothing else."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from runner import fmt

BEGIN = "<!-- population figures: benchmarks/population.py --readme writes from here -->"
END = "<!-- end of population figures -->"
X = "\u00d7"  # the README's multiplication sign
# Issue 21's goals, shown beside the figures they judge.
GOAL_SHARE = {("tutorial", 16): 0.40, ("recommended", 16): 0.60}
GOAL_OVER_JAX = {("tutorial", 16): 1.2}
GOAL_SERVICE_SHARE = {"tutorial": 0.40, "recommended": 0.60}
GOAL_K1 = 1.3  # a single job (a population of one) against the run before


def _n(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _goal(text: str, met: bool) -> str:
    return f"{text}: {'met' if met else 'missed'}"


def _goals(row: dict[str, Any], res: dict[str, Any], before: float | None) -> str:
    key = (row["preset"], row["k"])
    pop = row["population"]
    goals = []
    if key in GOAL_SHARE:
        goals.append(
            _goal(f"≥ {GOAL_SHARE[key]:.0%} of peak", pop["share_of_peak"] >= GOAL_SHARE[key])
        )
    if key in GOAL_OVER_JAX and "jax" in row:
        over = row["population_over_jax"] >= GOAL_OVER_JAX[key]
        goals.append(_goal(f"≥ {GOAL_OVER_JAX[key]}{X} JAX", over))
    if key == ("tutorial", 1) and before:
        ratio = pop["rate"] / before
        goals.append(_goal(f"≥ {GOAL_K1}{X} before ({ratio:.2f}{X})", ratio >= GOAL_K1))
    if key == ("tutorial", 64):
        ratio = res["k64_over_k16"]
        goals.append(_goal(f"per member ≥ K=16's ({ratio:.2f}{X})", ratio >= 1.0))
    return "; ".join(goals)


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    jax = res.get("jax_version")
    # The tree before the engine's change, measured side by side (--before), if it was.
    old = {(r["preset"], r["k"]): r["before"]["rate"] for r in res["engine"] if "before" in r}
    flops = " and ".join(f"{_n(f)} FLOPs ({p})" for p, f in res["flops_per_member_step"].items())
    intro = (
        f"Measured {res['date'][:10]} on {m['cpus']} shared cores ({m['cpu_model']}, torch "
        f"{m['torch']} on {m.get('torch_cpu', '?')} kernels{f', jax {jax}' if jax else ''}), "
        "one intra-op thread pinned to one CPU (the JAX peer too), medians of "
        f"{res['repeats']} interleaved runs. One core's peak (1024² `torch.mm`, one thread) was "
        f"{res['peak_gflops']:.1f} GFLOP/s in the same run; a member-step is {flops}. The JAX "
        "peer (`pip install -e '.[peers]'`) is the same GANs as vmap of JAX's vjp gradients, "
        "optax.adam, the step under jit, single-threaded XLA, drawing its data in the step."
        + (f" Before: {res['before_label']}, side by side in the same run." if old else "")
    )
    lines = [
        textwrap.fill(intro, width=95, break_on_hyphens=False),
        "",
        f"| preset | K | GAN-steps/s{' (before →)' if old else ''} | share of peak "
        "| JAX peer | Population / JAX | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in res["engine"]:
        key = (row["preset"], row["k"])
        pop = row["population"]
        rate = (f"{_n(old[key])} → " if key in old else "") + _n(pop["rate"])
        jax_rate = (
            f"{_n(row['jax']['rate'])} ({row['jax']['share_of_peak']:.1%})" if "jax" in row else "—"
        )
        ratio = f"{row['population_over_jax']:.2f}{X}" if "jax" in row else "—"
        lines.append(
            f"| {row['preset']} | {row['k']} | {rate} | {pop['share_of_peak']:.1%} | {jax_rate} "
            f"| {ratio} | {_goals(row, res, old.get(key))} |"
        )
    for row in res.get("service", []):
        goal = GOAL_SERVICE_SHARE[row["preset"]]
        share = row["share_of_2core_peak"]
        lines.append(
            f"| {row['preset']} sweep, {_n(row['steps'])} steps, through the service (2 workers, "
            f"POST to the last finish) | {row['k']} | {_n(row['rate'])} | {share:.1%} of "
            f"2 cores | | | {_goal(f'≥ {goal:.0%} of the 2-core peak', share >= goal)} |"
        )
    return "\n".join(lines)


def update_readme(res: dict[str, Any], readme: Path) -> None:
    text = readme.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: the markers {BEGIN!r} and {END!r} are missing")
    readme.write_text(text[: start + len(BEGIN)] + "\n" + table(res) + "\n" + text[end:])
    print(f"updated the population figures in {readme}")


def print_results(res: dict[str, Any]) -> None:
    peak = res["peak_gflops"]
    print(
        f"1. one-core peak: torch.mm 1024x1024 float32, 1 thread: {peak:.1f} GFLOP/s, median of"
        f" {len(res['peak_runs'])} through part 2 (from {min(res['peak_runs']):.1f} to"
        f" {max(res['peak_runs']):.1f})"
    )
    for preset, flops in res["flops_per_member_step"].items():
        print(f"   one {preset} member-step: {flops:,} FLOPs (matrix products, minimal schedule)")
    print(
        f"2. engine-only, 1 thread, GAN-steps/s, median of {res['repeats']} interleaved"
        + (f"; JAX {res['jax_version']} peer, single-threaded XLA" if res["jax_version"] else "")
    )
    labels = {"population": "Population", "before": "before", "jax": "JAX"}
    for row in res["engine"]:
        parts = []
        for name, label in labels.items():
            if name in row:
                side = row[name]
                parts.append(
                    f"{label} {side['rate']:6.0f} ({side['share_of_peak']:5.1%} of peak, cpu/wall"
                    f" {side['cpu_per_wall']:.2f})"
                    + (
                        f" Population/{label} {row[f'population_over_{name}']:.2f}x"
                        if name != "population"
                        else ""
                    )
                )
        print(f"   {row['preset']:11} K={row['k']:<3} " + "   ".join(parts))
        print(
            f"{'':19}runs: "
            + " | ".join(
                f"{label} {fmt(row[n]['runs'])}" for n, label in labels.items() if n in row
            )
        )
    print(f"   tutorial K=64 / K=16 per member: {res['k64_over_k16']:.2f}x")
    if res["jax_version"]:
        print(
            "   (both draw their own data per member each step: Population with torch's CPU"
            " generators, JAX with jax.random inside the jitted step)"
        )
    for row in res.get("service", []):
        print(
            f"3. service: {row['k']}-member {row['preset']} sweep, {row['steps']} steps, POST"
            f" to the last finished_at: {row['rate']:.0f} GAN-steps/s,"
            f" {row['share_of_2core_peak']:.1%} of the 2-core peak   runs: {fmt(row['runs'])}"
            f"   populations: {' | '.join(row['populations'])}"
        )
