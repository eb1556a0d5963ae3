"""A sweep's members, trained as populations by the pool, reach the quality separate tutorial
jobs reach: a 16-seed tutorial sweep of 10 000 steps through a real server (two workers)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import pytest

from tests.conftest import Server

FINAL = {"succeeded", "failed", "cancelled"}
SEEDS = list(range(16))
# The tutorial's own 10 000 steps: on this 2-core machine the whole test (server start, two
# populations of 8, one per worker) took 14 s with the machine quiet, 55 s while other
# people's tests loaded it (load average 6-9); the deadline below leaves room for worse.
STEPS = 10_000

# What separate tutorial jobs reach (default config, 10 000 steps), measured offline with
# Trainer (the autograd reference), one run per seed, seeds 0-15, final logged metrics:
#   w1_a      median 0.0444, range 0.0397-0.0552, standard deviation 0.0042
#   in_band   median 0.9155, range 0.8984-0.9287, standard deviation 0.0088
#   d_accuracy 0.491-0.509; d_score - (-2 ln 2) from -0.003 to +0.020
# (README, seeds 0-9: w1_a 0.040-0.050, in_band 0.899-0.929.) The same 16 seeds as one
# Population gave medians w1_a 0.0448, in_band 0.9182: float rounding alone (batched kernels
# add in another order) sends each seed down another trajectory after a few thousand steps,
# so a member matches its separate job in distribution, not value by value.
#
# The bounds: the separate-job band (seeds 0-9 above) for the sweep's median, widened by
# about two standard errors of a 16-member median (1.25 sd / 4: w1_a 0.0013, in_band
# 0.0028), for a machine or BLAS whose rounding picks other trajectories. The separate
# jobs' own 16-seed medians sit 5-8 standard errors inside these bounds (the band is the
# range of single seeds, already wide for a median).
W1_A_MEDIAN = (0.040 - 0.003, 0.050 + 0.003)
IN_BAND_MEDIAN = (0.899 - 0.006, 0.929 + 0.006)
# Each member at D's equilibrium (D(x) = 1/2 everywhere): mean D(real) 0.5, d_score
# -d_loss = -2 ln 2. Measured per seed (Trainer and Population): within 0.012 and 0.020.
D_ACCURACY = (0.45, 0.55)
D_SCORE = (-2 * math.log(2), 0.05)
#
# It can fail: the same 16 seeds trained offline (one Population, 10 000 steps) with both
# learning rates 3x the tutorial's end at median in_band 0.863 (one seed's d_score 0.076 off
# -2 ln 2), with 2x at 0.881, both below 0.893; this test with 2x in the sweep's config
# failed so (median in_band 0.8813). A smaller rate, 1/2 or 1/3, ends inside: the tutorial's
# remaining error is its bias, which 10 000 smaller steps reach as well.


@pytest.mark.slow
def test_a_tutorial_sweep_reaches_the_quality_of_separate_tutorial_jobs(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(max_concurrent_jobs="2")
    with server.client() as c:
        t0 = time.monotonic()
        r = c.post("/v1/sweeps", json={"config": {"steps": STEPS}, "vary": {"seed": SEEDS}})
        assert r.status_code == 202, r.text
        sweep_id = r.json()["id"]
        deadline = t0 + 180
        while True:
            jobs = c.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 100}).json()["items"]
            if len(jobs) == len(SEEDS) and all(j["state"] in FINAL for j in jobs):
                break
            assert time.monotonic() < deadline, (
                f"sweep not done after 180 s: {[(j['state'], j['step']) for j in jobs]}\n"
                f"{server.log()[-3000:]}"
            )
            time.sleep(0.5)
        elapsed = time.monotonic() - t0

    jobs.sort(key=lambda j: j["member_index"])
    assert [j["state"] for j in jobs] == ["succeeded"] * len(SEEDS), [j["error"] for j in jobs]
    assert [j["config"]["seed"] for j in jobs] == SEEDS
    assert all(j["step"] == STEPS for j in jobs)
    # The pool trained them as populations (not 16 jobs one by one) on both workers.
    assert len({j["worker"] for j in jobs}) == 2, [j["worker"] for j in jobs]

    table = "\n".join(
        f"seed {j['config']['seed']:2}: w1_a {j['quality']['w1_a']:.4f} "
        f"in_band {j['quality']['in_band']:.4f} d_accuracy {j['metrics']['d_accuracy']:.3f} "
        f"d_score {j['metrics']['d_score']:.4f}"
        for j in jobs
    )
    context = f"{len(SEEDS)} members in {elapsed:.1f} s:\n{table}"
    # Sixteen different GANs, not one trained sixteen times.
    assert len({j["quality"]["w1_a"] for j in jobs}) == len(SEEDS), context
    for j in jobs:
        assert D_ACCURACY[0] <= j["metrics"]["d_accuracy"] <= D_ACCURACY[1], context
        assert abs(j["metrics"]["d_score"] - D_SCORE[0]) <= D_SCORE[1], context
    w1_a = statistics.median(j["quality"]["w1_a"] for j in jobs)
    in_band = statistics.median(j["quality"]["in_band"] for j in jobs)
    assert W1_A_MEDIAN[0] <= w1_a <= W1_A_MEDIAN[1], f"median w1_a {w1_a:.4f}; {context}"
    assert IN_BAND_MEDIAN[0] <= in_band <= IN_BAND_MEDIAN[1], (
        f"median in_band {in_band:.4f}; {context}"
    )
