"""Service figures, in one run against a real server on a free port (not a test).

Run: .venv/bin/python benchmarks/service.py [--steps N]

1. Aggregate training steps/s of two concurrent jobs / one job alone (worker processes),
   one then two, repeated --repeats times, medians; progress is read 4 times a second.
2. p50 / p99 latency of GET /v1/jobs/{id} while two jobs train, in a run of its own: its
   tight polling (about 50 GETs/s per job) takes CPU from the two workers on 2 cores, so the
   aggregate steps/s under that load is printed beside it rather than mixed into 1.
3. POST /v1/checkpoints/{id}/samples, n = 100 000 as .npy, next to the engine's own sampling.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

import httpx
import numpy as np
from _server import start_server

from gan_engine import CurveSampler, checkpoint_from_bytes


def train_jobs(
    client: httpx.Client, n_jobs: int, steps: int, poll_s: float
) -> tuple[float, list[float], list[str]]:
    """Starts n jobs at once and reads them every poll_s; returns (aggregate steps/s while
    all run, GET latencies, ids)."""
    cfg = {"steps": steps, "log_every": 100, "checkpoint_every": 0, "seed": 1}
    ids = [client.post("/v1/jobs", json={"config": cfg}).json()["id"] for _ in range(n_jobs)]
    samples: list[tuple[float, int]] = []
    latencies: list[float] = []
    while True:
        t0 = time.perf_counter()
        jobs = [client.get(f"/v1/jobs/{i}").json() for i in ids]
        latencies.append((time.perf_counter() - t0) / len(ids))
        if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs):
            break
        # Count only while every job is running and past its start-up (10%..90% of steps).
        if all(j["state"] == "running" and 0.1 <= j["progress"] <= 0.9 for j in jobs):
            samples.append((time.perf_counter(), sum(j["step"] for j in jobs)))
        time.sleep(poll_s)
    if len(samples) < 2:
        raise SystemExit("too few samples: raise --steps")
    (t1, s1), (t2, s2) = samples[0], samples[-1]
    return (s2 - s1) / (t2 - t1), latencies, ids


def fmt(rates: list[float]) -> str:
    return " ".join(f"{r:.0f}" for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        proc, url = start_server(data_dir, max_concurrent_jobs="2")
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                ones, twos = [], []
                for _ in range(args.repeats):
                    rate, _, ids = train_jobs(client, 1, args.steps, 0.25)
                    ones.append(rate)
                    twos.append(train_jobs(client, 2, args.steps, 0.25)[0])
                one, two = statistics.median(ones), statistics.median(twos)
                loaded, latencies, _ = train_jobs(client, 2, args.steps, 0.02)
                lat = sorted(latencies)
                p50 = statistics.median(lat) * 1e3
                p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3
                print(
                    f"training ({os.cpu_count()} cores, {args.steps} steps a job, "
                    f"median of {args.repeats})"
                )
                print(f"  one job alone          {one:8.0f} steps/s   runs: {fmt(ones)}")
                print(
                    f"  two jobs at once       {two:8.0f} steps/s aggregate   ratio {two / one:.2f}"
                    f"   runs: {fmt(twos)}"
                )
                print(
                    f"GET /v1/jobs/{{id}} while two jobs train: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                    f"({len(lat)} requests; meanwhile {loaded:.0f} steps/s aggregate, "
                    f"ratio {loaded / one:.2f})"
                )

                ckpt_id = client.get(f"/v1/jobs/{ids[0]}").json()["latest_checkpoint"]
                data = client.get(f"/v1/checkpoints/{ckpt_id}/file").content
                sampler = CurveSampler.from_checkpoint(checkpoint_from_bytes(data))
                body = {"n": args.samples, "seed": 5}
                headers = {"Accept": "application/x-npy"}
                client.post(f"/v1/checkpoints/{ckpt_id}/samples", json=body, headers=headers)
                http_t, eng_t, json_t = [], [], []
                for _ in range(5):
                    t0 = time.perf_counter()
                    r = client.post(
                        f"/v1/checkpoints/{ckpt_id}/samples", json=body, headers=headers
                    )
                    curves = np.load(io.BytesIO(r.content))
                    http_t.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    local = sampler.sample(args.samples, seed=5).curves
                    eng_t.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    client.post(f"/v1/checkpoints/{ckpt_id}/samples", json=body).json()
                    json_t.append(time.perf_counter() - t0)
                assert np.array_equal(curves, local), "server and engine disagree"
                h, e, j = (statistics.median(v) * 1e3 for v in (http_t, eng_t, json_t))
                print(f"sampling n={args.samples} (median of 5)")
                print(f"  engine in-process      {e:8.1f} ms")
                print(f"  POST .../samples npy   {h:8.1f} ms   ratio {h / e:.2f}")
                print(f"  POST .../samples json  {j:8.1f} ms   ratio {j / e:.2f}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
