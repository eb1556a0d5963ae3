"""The API under load while jobs train, in one run against a real server (not a test).

Run: .venv/bin/python benchmarks/load.py [--quick] [--think-ms MS]

Needs `wrk` (apt-get install -y wrk) to generate load: Python clients on this 2-core machine
would themselves be the bottleneck. Without it a Python generator stands in, with a warning;
the figures then still compare endpoints under the same generator, so the ratios hold.

It starts a server on a free loopback port, in a temp dir and a process group of its own
(CURVEGAN_MAX_CONCURRENT_JOBS=2), starts two long training jobs, and prints:

1. mixed load: 50 clients, each thinking --think-ms between requests: 30 poll
   GET /v1/jobs/{id}, 8 read GET /v1/jobs/{id}/metrics?limit=100, 4 POST small sample
   requests (n=16), 8 follow the job's event stream. Requests/s, p50 and p99 per endpoint,
   errors (any non-2xx other than 429, and transport errors), the server's CPU a request,
   and the two jobs' steps/s with the load against without it, in 3 rounds of a quiet
   window then a loaded one (p50: the median round's, p99: the worst round's).
2. saturation: /healthz alone, then GET /v1/jobs/{id} alone, 50 connections without
   thinking, twice each, interleaved; requests/s and p50/p99 of each, their ratio, and the
   training steps/s meanwhile, and the server's CPU a request of each (which, unlike
   requests/s, other processes on a shared machine do not move).
3. 200 event subscribers on one job: that job's steps/s with and without them, and the p99
   of /healthz (one client, a request every 20 ms) meanwhile.
About 2.5 minutes by default, --quick about 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from runner import Proc, base_env, pct, start_server

JOB_CONFIG = {"steps": 10_000_000, "log_every": 100, "checkpoint_every": 0, "seed": 1}
SAMPLE_BODY = {"n": 16, "seed": 1}
SUBSCRIBERS = 200
NICE = {"CURVEGAN_WORKER_NICE": os.environ["NICE"]} if "NICE" in os.environ else {}
MIXED_ROUNDS = 3

WRK_SCRIPT = """
wrk.method = "{method}"
{body}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) limited = 0; bad = 0 end
function response(status, headers, body)
  if status == 429 then limited = limited + 1 elseif status >= 300 then bad = bad + 1 end
end
{delay}
function done(summary, latency, requests)
  local limited, bad = 0, 0
  for _, t in ipairs(threads) do limited = limited + t:get("limited"); bad = bad + t:get("bad") end
  local e = summary.errors
  io.write(string.format("LOADSTATS %d %d %d %d %d %f %f\\n", summary.requests,
    summary.duration, bad, limited, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Stats:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx other than 429, and transport errors
    limited: int = 0  # 429s

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"  {self.name:34s} {self.rps:8.1f} req/s   p50 {self.p50_ms:7.1f} ms   "
            f"p99 {self.p99_ms:7.1f} ms   errors {self.errors}   429s {self.limited}"
        )


# ------------------------------------------------------------------ load generators


def wrk_load(
    name: str,
    url: str,
    path: str,
    conns: int,
    seconds: float,
    tmp: Path,
    *,
    body: dict | None = None,
    think_ms: int = 0,
) -> Stats:
    lua = WRK_SCRIPT.format(
        method="POST" if body is not None else "GET",
        body=(
            f'wrk.body = \'{json.dumps(body)}\'\nwrk.headers["Content-Type"] = "application/json"'
            if body is not None
            else ""
        ),
        delay=f"function delay() return {think_ms} end" if think_ms else "",
    )
    script = tmp / f"{name.replace('/', '_').replace(' ', '_')}.lua"
    script.write_text(lua)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("LOADSTATS"))
    n, dur_us, bad, limited, sock, p50, p99 = line.split()[1:]
    return Stats(
        name, int(n), int(dur_us) / 1e6, float(p50) / 1e3, float(p99) / 1e3,
        int(bad) + int(sock), int(limited),
    )  # fmt: skip


def python_load(
    name: str,
    url: str,
    path: str,
    conns: int,
    seconds: float,
    tmp: Path,
    *,
    body: dict | None = None,
    think_ms: int = 0,
) -> Stats:
    """The same closed loop as wrk's, with httpx: slower per request, so a weaker load."""
    del tmp

    async def run() -> Stats:
        latencies: list[float] = []
        errors = limited = 0
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=conns)
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:

            async def loop() -> None:
                nonlocal errors, limited
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    try:
                        if body is None:
                            r = await client.get(path)
                        else:
                            r = await client.post(path, json=body)
                        latencies.append(time.perf_counter() - t0)
                        limited += r.status_code == 429
                        errors += r.status_code >= 300 and r.status_code != 429
                    except httpx.TransportError:
                        errors += 1
                    if think_ms:
                        await asyncio.sleep(think_ms / 1e3)

            t0 = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(conns)))
            elapsed = time.perf_counter() - t0
        ms = [x * 1e3 for x in latencies] or [0.0]
        return Stats(name, len(latencies), elapsed, pct(ms, 0.5), pct(ms, 0.99), errors, limited)

    return asyncio.run(run())


class Streams:
    """``n`` clients following a job's event stream, in a thread of their own."""

    def __init__(self, url: str, job_id: str, n: int, since_step: int = 0) -> None:
        self.url, self.job_id, self.n, self.since_step = url, job_id, n, since_step
        self.frames = self.errors = self.limited = self.connected = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _one(self, client: httpx.AsyncClient) -> None:
        try:
            async with client.stream(
                "GET", f"/v1/jobs/{self.job_id}/events", params={"since_step": self.since_step}
            ) as r:
                if r.status_code == 429:
                    self.limited += 1
                    return
                if r.status_code != 200:
                    self.errors += 1
                    return
                self.connected += 1
                async for line in r.aiter_lines():
                    self.frames += line.startswith("event:")
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            if not self._stop.is_set():
                self.errors += 1

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.n + 1)
        timeout = httpx.Timeout(30, read=60)
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout, limits=limits) as c:
            tasks = [asyncio.create_task(self._one(c)) for _ in range(self.n)]
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while self.connected + self.limited + self.errors < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.connected} of {self.n} streams connected")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# ------------------------------------------------------------------ training rates


def cpu_s(pid: int) -> float:
    """CPU seconds the process (all its threads) has used: a cost per request that other
    processes on this shared machine do not move, unlike requests/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steps_of(client: httpx.Client, ids: list[str]) -> dict[str, tuple[float, int]]:
    out = {}
    for job_id in ids:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] != "running":
            raise RuntimeError(f"job {job_id} is {job['state']}: {job.get('error')}")
        out[job_id] = (time.perf_counter(), job["step"])
    return out


def rates(before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]) -> list[float]:
    return [(after[i][1] - before[i][1]) / (after[i][0] - before[i][0]) for i in before]


def quiet_rates(client: httpx.Client, ids: list[str], seconds: float) -> list[float]:
    start = steps_of(client, ids)
    time.sleep(seconds)
    return rates(start, steps_of(client, ids))


def fmt_rates(values: list[float]) -> str:
    return f"{sum(values):7.0f} steps/s ({' + '.join(f'{v:.0f}' for v in values)})"


def slowdown(loaded: list[float], quiet: list[float]) -> str:
    return f"{100 * (1 - sum(loaded) / sum(quiet)):+.1f}% slower"


# ------------------------------------------------------------------ phases


class Trained:
    """Steps and seconds of each job, summed over windows: a rate over interleaved windows."""

    def __init__(self, ids: list[str]) -> None:
        self.steps = dict.fromkeys(ids, 0)
        self.seconds = dict.fromkeys(ids, 0.0)

    def add(
        self, before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]
    ) -> None:
        for i in self.steps:
            self.steps[i] += after[i][1] - before[i][1]
            self.seconds[i] += after[i][0] - before[i][0]

    def rates(self) -> list[float]:
        return [self.steps[i] / self.seconds[i] for i in self.steps]


def merged(stats: list[Stats]) -> Stats:
    """One endpoint's rounds as one: requests/s over all, p50 the median round's, p99 the
    worst round's."""
    return Stats(
        stats[0].name,
        sum(x.requests for x in stats),
        sum(x.seconds for x in stats),
        statistics.median(x.p50_ms for x in stats),
        max(x.p99_ms for x in stats),
        sum(x.errors for x in stats),
        sum(x.limited for x in stats),
    )


def mixed_phase(
    url: str,
    client: httpx.Client,
    ids: list[str],
    window: float,
    think_ms: int,
    load,
    tmp: Path,
    pid: int,
) -> None:
    a, b = ids
    w = window / MIXED_ROUNDS
    print(
        f"1. mixed load: 50 clients thinking {think_ms} ms, two jobs training; {MIXED_ROUNDS} "
        f"rounds of {w:.0f} s quiet then {w:.0f} s loaded (interleaved: this machine drifts)"
    )
    specs = [
        ("GET /v1/jobs/{id}", f"/v1/jobs/{b}", 30, None),
        ("GET /v1/jobs/{id}/metrics?limit=100", f"/v1/jobs/{a}/metrics?limit=100", 8, None),
        ("POST /v1/jobs/{id}/samples n=16", f"/v1/jobs/{b}/samples", 4, SAMPLE_BODY),
    ]
    results: dict[str, list[Stats]] = {name: [] for name, *_ in specs}
    quiet, loaded = Trained(ids), Trained(ids)
    frames = stream_errors = stream_429s = 0
    busy_s = loaded_s = 0.0
    lock = threading.Lock()

    def go(name: str, path: str, conns: int, body: dict | None) -> None:
        stats = load(name, url, path, conns, w, tmp, body=body, think_ms=think_ms)
        with lock:
            results[name].append(stats)

    for _ in range(MIXED_ROUNDS):
        before = steps_of(client, ids)
        time.sleep(w)
        quiet.add(before, steps_of(client, ids))
        # Clients that have the history already: the figures are of following a job, not of
        # catching up with thousands of logged steps.
        streams = Streams(url, a, 8, steps_of(client, [a])[a][1])
        streams.start()
        before, cpu0, t0 = steps_of(client, ids), cpu_s(pid), time.perf_counter()
        threads = [threading.Thread(target=go, args=spec) for spec in specs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        loaded.add(before, steps_of(client, ids))
        busy_s += cpu_s(pid) - cpu0
        loaded_s += time.perf_counter() - t0
        streams.stop()
        frames += streams.frames
        stream_errors += streams.errors
        stream_429s += streams.limited
    for name, _, _, _ in specs:
        print(merged(results[name]).line())
    print(
        f"  {'GET /v1/jobs/{id}/events (8 open)':34s} {frames / loaded_s:8.1f} frames/s"
        f"   errors {stream_errors}   429s {stream_429s}"
    )
    total = sum(x.requests for v in results.values() for x in v)
    print(
        f"  all requests: {total / loaded_s:.0f} req/s, the server using "
        f"{100 * busy_s / loaded_s:.0f}% of a core ({1e6 * busy_s / max(total, 1):.0f} us CPU "
        "a request)"
    )
    print(f"  training quiet  {fmt_rates(quiet.rates())}")
    print(
        f"  training loaded {fmt_rates(loaded.rates())}   {slowdown(loaded.rates(), quiet.rates())}"
    )


def saturation_phase(
    url: str, client: httpx.Client, ids: list[str], window: float, load, tmp: Path, pid: int
) -> None:
    print(f"2. saturation: 50 connections, no thinking, {window:.0f} s each, two jobs training")
    quiet = quiet_rates(client, ids, window / 2)
    runs: dict[str, list[tuple[Stats, list[float]]]] = {"healthz": [], "status": []}
    cpu: dict[str, float] = {"healthz": 0.0, "status": 0.0}
    for _ in range(2):
        for key, path in (("healthz", "/healthz"), ("status", f"/v1/jobs/{ids[0]}")):
            start, cpu0 = steps_of(client, ids), cpu_s(pid)
            stats = load(f"GET {path.replace(ids[0], '{id}')}", url, path, 50, window, tmp)
            cpu[key] += cpu_s(pid) - cpu0
            runs[key].append((stats, rates(start, steps_of(client, ids))))
            print(stats.line() + f"   training {fmt_rates(runs[key][-1][1])}")
    rps = {k: sum(s.requests for s, _ in v) / sum(s.seconds for s, _ in v) for k, v in runs.items()}
    p99 = {k: max(s.p99_ms for s, _ in v) for k, v in runs.items()}
    trained = {k: [sum(r) for _, r in v] for k, v in runs.items()}
    per_req = {k: 1e6 * cpu[k] / sum(s.requests for s, _ in v) for k, v in runs.items()}
    print(
        f"  status/healthz requests/s: {rps['status']:.0f} / {rps['healthz']:.0f} = "
        f"{rps['status'] / rps['healthz']:.2f}   status p99 (worse run) {p99['status']:.1f} ms"
    )
    print(
        f"  server CPU a request: status {per_req['status']:.0f} us, /healthz "
        f"{per_req['healthz']:.0f} us (ratio {per_req['healthz'] / per_req['status']:.2f})"
    )
    print(
        f"  training quiet {sum(quiet):.0f} steps/s; under /healthz "
        f"{statistics.mean(trained['healthz']):.0f}, under status "
        f"{statistics.mean(trained['status']):.0f}"
    )


def open_streams_after(client: httpx.Client, expected: int, timeout: float = 10.0) -> str:
    """The server's count of open streams (curvegan_event_streams) once it reaches
    ``expected`` or ``timeout`` passes: whether closed streams gave their slots back."""
    deadline = time.monotonic() + timeout
    while True:
        lines = client.get("/metrics").text.splitlines()
        found = [x.split()[1] for x in lines if x.startswith("curvegan_event_streams ")]
        if not found:
            return "n/a (no curvegan_event_streams gauge)"
        if int(float(found[0])) == expected or time.monotonic() > deadline:
            return found[0]
        time.sleep(0.1)


def subscribers_phase(url: str, client: httpx.Client, ids: list[str], window: float) -> None:
    job = ids[0]
    print(f"3. {SUBSCRIBERS} event subscribers on one job, {window:.0f} s")

    def probe(seconds: float) -> tuple[list[float], list[float]]:
        start = steps_of(client, [job])
        lat = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            client.get("/healthz").raise_for_status()
            lat.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.02)
        return rates(start, steps_of(client, [job])), lat

    quiet, quiet_lat = probe(window)
    streams = Streams(url, job, SUBSCRIBERS, steps_of(client, [job])[job][1])
    streams.start()
    frames0 = streams.frames
    loaded, loaded_lat = probe(window)
    frames = streams.frames - frames0
    streams.stop()
    left = open_streams_after(client, 0)
    print(
        f"  job alone        {quiet[0]:7.0f} steps/s   /healthz p50 {pct(quiet_lat, 0.5):.1f} ms"
        f"  p99 {pct(quiet_lat, 0.99):.1f} ms"
    )
    print(
        f"  with subscribers {loaded[0]:7.0f} steps/s   /healthz p50 {pct(loaded_lat, 0.5):.1f} ms"
        f"  p99 {pct(loaded_lat, 0.99):.1f} ms   {slowdown(loaded, quiet)}"
    )
    print(
        f"  {streams.connected} streams open, {frames / window:.0f} frames/s delivered, "
        f"errors {streams.errors}, 429s {streams.limited}; open on the server once they "
        f"left: {left}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows (~1.5 min)")
    parser.add_argument("--think-ms", type=int, default=100, help="mixed load: think time")
    parser.add_argument("--python-load", action="store_true", help="never use wrk")
    args = parser.parse_args()
    window = 12.0 if args.quick else 24.0
    load = wrk_load
    if args.python_load or shutil.which("wrk") is None:
        print(
            "WARNING: wrk not found (apt-get install -y wrk): a Python generator makes the load; "
            "it is the bottleneck on 2 cores, so read ratios, not absolute figures",
            file=sys.stderr,
        )
        load = python_load
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            env = {**base_env(), "CURVEGAN_MAX_CONCURRENT_JOBS": "2", **NICE}
            url = start_server("server", tmp, env, procs)
            with httpx.Client(base_url=url, timeout=30) as client:
                ids = [
                    client.post("/v1/jobs", json={"config": JOB_CONFIG}).json()["id"]
                    for _ in range(2)
                ]
                deadline = time.monotonic() + 60
                while any(client.get(f"/v1/jobs/{i}").json()["state"] != "running" for i in ids):
                    if time.monotonic() > deadline:
                        raise RuntimeError("jobs did not start")
                    time.sleep(0.2)
                for job_id in ids:  # the sample requests read the latest checkpoint
                    client.post(f"/v1/jobs/{job_id}/checkpoints").raise_for_status()
                time.sleep(3)  # past the jobs' start-up
                print(
                    f"server on loopback, 2 jobs training; load by {load.__name__}; load "
                    f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
                )
                pid = procs[0].proc.pid if procs[0].proc else 0
                mixed_phase(url, client, ids, window, args.think_ms, load, tmp, pid)
                saturation_phase(url, client, ids, window / 2, load, tmp, pid)
                subscribers_phase(url, client, ids, window / 2)
                for job_id in ids:
                    client.post(f"/v1/jobs/{job_id}/cancel")
                print(f"load average at the end {os.getloadavg()[0]:.1f}")
        except BaseException:
            for proc in procs:
                print(f"--- {proc.name} log (tail) ---\n{proc.log()[-3000:]}", file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                proc.stop()


if __name__ == "__main__":
    main()
