"""Big figures and the server's memory and event loop (issue 20): 40 PNG figures of 2000 x 2000
pixels, in a row and then as a burst of 40 at once, while a prober asks /healthz every 10 ms.

Printed for each server: the memory of its whole process tree (the server, its training
workers and its figure workers) before, at the peak, right after and once the figure pool
went idle; /healthz's p50, p99 and worst latency while figures are drawn (the worst is the
longest the event loop was blocked, plus one request's own time); how many figures came back
200 and how many 429. Goals: memory back within 100 MB of the start, no stall over 100 ms.

`--baseline DIR` also runs a server from another checkout of this repository (say
`git worktree add /tmp/base <commit>`), side by side in the same run: the machine is shared
and noisy, so only figures from one run compare.

    .venv/bin/python benchmarks/figures.py [--baseline /tmp/base] [--figures 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _server import ROOT, free_port

from tests.helpers import tiny_checkpoint_bytes

SIZE = "width=2000&height=2000&n=64"
IDLE_WAIT_S = 15.0  # the pool stops its workers after 10 s idle (core/figure_pool.py)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process below it, in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Prober(threading.Thread):
    """GET /healthz every 10 ms; latencies in ms."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.latencies, self.stop = url, [], threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self.stop.is_set():
                t = time.perf_counter()
                c.get("/healthz")
                self.latencies.append((time.perf_counter() - t) * 1000)
                time.sleep(0.01)


def start(cwd: Path, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "CURVEGAN_PORT": str(port),
        "CURVEGAN_DATA_DIR": str(data_dir),
        "CURVEGAN_LOG_LEVEL": "warning",
        "CURVEGAN_MAX_CONCURRENT_JOBS": "1",
    }
    log = open(data_dir.parent / "server.log", "wb")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=cwd, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server in {cwd} did not start")


def measure(name: str, cwd: Path, figures: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        proc, url = start(cwd, data)
        try:
            with httpx.Client(base_url=url, timeout=120) as c:
                ck = c.post(
                    "/v1/checkpoints",
                    content=tiny_checkpoint_bytes(),
                    headers={"content-type": "application/octet-stream"},
                ).json()["id"]
                path = f"/v1/checkpoints/{ck}/figure.png"
                assert c.get(f"{path}?width=320&height=240").status_code == 200  # warm
                base, base_server = tree_rss_mb(proc.pid), rss_mb(proc.pid)
                peak = base
                for label, concurrent in (("in a row", 1), ("burst", figures)):
                    prober = Prober(url)
                    prober.start()
                    statuses: list[int] = []

                    def one(_: int, c: httpx.Client = c, statuses: list[int] = statuses) -> None:
                        statuses.append(c.get(f"{path}?{SIZE}").status_code)

                    with ThreadPoolExecutor(concurrent) as ex:
                        futures = [ex.submit(one, i) for i in range(figures)]
                        while not all(f.done() for f in futures):
                            peak = max(peak, tree_rss_mb(proc.pid))
                            time.sleep(0.05)
                        for f in futures:
                            f.result()
                    prober.stop.set()
                    prober.join()
                    lat = sorted(prober.latencies)
                    p99 = lat[int(0.99 * (len(lat) - 1))]
                    print(
                        f"{name:9} {label:8}: {statuses.count(200)} drawn, "
                        f"{statuses.count(429)} refused (429); /healthz p50 "
                        f"{statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, worst {lat[-1]:.1f} ms "
                        f"({len(lat)} probes)"
                    )
                after, after_server = tree_rss_mb(proc.pid), rss_mb(proc.pid)
                time.sleep(IDLE_WAIT_S)
                idle, idle_server = tree_rss_mb(proc.pid), rss_mb(proc.pid)
                print(
                    f"{name:9} memory, server + workers: start {base:.0f} MB, peak {peak:.0f} MB,"
                    f" after {after:.0f} MB (+{after - base:.0f}), after {IDLE_WAIT_S:.0f} s idle"
                    f" {idle:.0f} MB (+{idle - base:.0f})\n"
                    f"{name:9} memory, server process alone: start {base_server:.0f} MB, after "
                    f"{after_server:.0f} MB (+{after_server - base_server:.0f}), after idle "
                    f"{idle_server:.0f} MB (+{idle_server - base_server:.0f})"
                )
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout, run side by side")
    parser.add_argument("--figures", type=int, default=40)
    args = parser.parse_args()
    print(f"{args.figures} PNG figures of 2000 x 2000, 64 curves each; {os.cpu_count()} cores")
    if args.baseline:
        measure("baseline", args.baseline.resolve(), args.figures)
    measure("this", ROOT, args.figures)


if __name__ == "__main__":
    main()
