"""A small learning-rate sweep as concurrent jobs: wait for all, compare, sample the best.

    python examples/lr_sweep.py [--url http://127.0.0.1:8000] [--steps 3000]

Needs only the client (``pip install curvegan``); the server does the training.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from curvegan import AsyncClient, Job

LEARNING_RATES = (5e-5, 1e-4, 3e-4, 1e-3)


async def sweep(url: str, api_key: str | None, steps: int, seed: int) -> None:
    async with AsyncClient(url, api_key=api_key) as api:
        started = [
            await api.create_job(
                {"steps": steps, "seed": seed, "lr_g": lr, "lr_d": lr}, name=f"lr={lr:g}"
            )
            for lr in LEARNING_RATES
        ]
        print(f"started {len(started)} jobs; waiting ...")
        jobs: list[Job] = await asyncio.gather(
            *(api.wait(j.id, raise_on_failure=False) for j in started)
        )

        print(f"\n{'job':26} {'lr':>8} {'state':10} {'d_score':>8} {'w1_a':>7} {'in_band':>7}")
        for job in jobs:
            m, q = job.metrics, job.quality
            print(
                f"{job.id:26} {job.config['lr_g']:8.0e} {job.state:10} "
                f"{m.d_score if m else float('nan'):8.3f} "
                f"{q.w1_a if q else float('nan'):7.4f} {q.in_band if q else float('nan'):7.3f}"
            )

        finished = [j for j in jobs if j.state == "succeeded" and j.quality and j.latest_checkpoint]
        if not finished:
            print("no job succeeded")
            return
        best = min(finished, key=lambda j: j.quality.w1_a)  # type: ignore[union-attr]
        samples = await api.sample(best.latest_checkpoint, n=5, seed=0)  # type: ignore[arg-type]
        print(f"\nbest: {best.name} ({best.id}), checkpoint {best.latest_checkpoint}")
        for curve in samples.curves:
            print("  " + " ".join(f"{float(v):5.2f}" for v in curve))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CURVEGAN_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("CURVEGAN_API_KEY"))
    parser.add_argument("--steps", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(sweep(args.url, args.api_key, args.steps, args.seed))


if __name__ == "__main__":
    main()
