"""Event streams' cost to the server, in one run against a real server (not a test).

Run: .venv/bin/python benchmarks/streams.py [--stalled N] [--readers N] [--history-s S]

It starts a server on a free loopback port (SQLite in a temp dir, one training worker,
CURVEGAN_MAX_EVENT_STREAMS=450, stopped on exit, Ctrl-C included) and prints:

1. stalled readers: a job with n_points=1024 and log_every=1 (a ~30 KB metrics frame a step)
   trains for --history-s seconds, to a long history; then --stalled (50) raw sockets send
   GET /v1/jobs/{id}/events and never read. The server's RSS (/proc/<pid>/status VmRSS)
   before, at its highest while they hang (sampled every 0.2 s for 15 s, the job still
   logging), and after; the streams the server still holds open (a reader is let go once
   the job has logged ~2 MiB of frames past it: ~70 steps, if the job gets that far).
   Goal: grows < 50 MB.
2. sweep readers: a 4-member sweep (log_every 50, so a member's step changes a few times a
   second); first with no stream open, the server's CPU over 5 s and /healthz p50 and p99
   over 200 sequential requests; then --readers (400) connections that read its event
   stream: the time until all are open, the server's CPU (utime + stime of /proc/<pid>/stat)
   as a share of one core over 10 s of streaming, then /healthz p50 and p99 again while they
   read (and the CPU over that window, the requests' own cost included). Goals: p99 < 50 ms,
   < 10% of a core.
About a minute and a half on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from _server import run_interruptible, start_server

TICK_S = os.sysconf("SC_CLK_TCK")
GOAL_RSS_MB = 50.0
GOAL_P99_MS = 50.0
GOAL_CPU = 0.10


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S  # utime, stime


def open_streams(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=60).text
    line = next(x for x in text.splitlines() if x.startswith("curvegan_event_streams "))
    return int(float(line.split()[1]))


def healthz_ms(url: str, n: int = 200) -> tuple[float, float]:
    times = []
    with httpx.Client(base_url=url) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(n - 1, int(n * 0.99))]


def verdict(value: float, goal: float, unit: str) -> str:
    if value < goal:
        return f"goal < {goal:g}{unit}: met"
    return f"goal < {goal:g}{unit}: MISSED by {value - goal:.1f}{unit}"


def stalled_readers(url: str, pid: int, n: int, history_s: float) -> None:
    job = httpx.post(
        f"{url}/v1/jobs",
        json={"config": {"steps": 1_000_000, "n_points": 1024, "log_every": 1}},
        timeout=30,
    ).json()["id"]
    time.sleep(history_s)
    step = httpx.get(f"{url}/v1/jobs/{job}").json()["step"]
    before = rss_mb(pid)
    host, port = url.removeprefix("http://").split(":")
    request = f"GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with ExitStack() as held:
        for _ in range(n):
            sock = held.enter_context(socket.create_connection((host, int(port))))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow link's
            sock.sendall(request)  # and then read nothing
        peak, end = before, time.monotonic() + 15
        while time.monotonic() < end:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.2)
        after = rss_mb(pid)
        still = open_streams(url)
        moved = httpx.get(f"{url}/v1/jobs/{job}", timeout=60).json()["step"] - step
    httpx.post(f"{url}/v1/jobs/{job}/cancel")
    print(f"1. {n} stalled readers of a job {step} steps into n_points=1024, log_every=1")
    print(f"   server RSS before {before:.1f} MB, highest {peak:.1f} MB, after 15 s {after:.1f} MB")
    print(f"   grew {peak - before:.1f} MB at most ({verdict(peak - before, GOAL_RSS_MB, ' MB')})")
    print(
        f"   streams the server still held open after 15 s: {still} of {n} (the job logged {moved} steps meanwhile)"
    )


received: list[int] = []  # bytes of each read of part 2's readers


async def _read_streams(
    url: str, path: str, n: int, ready: threading.Event, stop: asyncio.Event
) -> None:
    host, port = url.removeprefix("http://").split(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    async def reader() -> None:
        r, w = await asyncio.open_connection(host, int(port))
        w.write(request)
        await r.readuntil(b"\r\n\r\n")
        opened.append(1)
        if len(opened) == n:
            ready.set()
        while not stop.is_set():
            chunk = await r.read(65536)
            if not chunk:
                break
            received.append(len(chunk))
        w.close()

    opened: list[int] = []
    tasks = [asyncio.ensure_future(reader()) for _ in range(n)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def cpu_share(pid: int, seconds: float) -> float:
    """The server's CPU over the next ``seconds``, as a share of one core."""
    cpu0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_s(pid) - cpu0) / (time.monotonic() - t0)


def sweep_readers(url: str, pid: int, n: int) -> None:
    sweep = httpx.post(
        f"{url}/v1/sweeps",
        json={"config": {"steps": 1_000_000, "log_every": 50}, "vary": {"seed": [0, 1, 2, 3]}},
        timeout=30,
    ).json()["id"]
    time.sleep(3)  # its members running
    quiet_cpu, quiet = cpu_share(pid, 5), healthz_ms(url)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    path = f"/v1/sweeps/{sweep}/events"
    thread = threading.Thread(
        target=loop.run_until_complete, args=(_read_streams(url, path, n, ready, stop),)
    )
    t0 = time.monotonic()
    thread.start()
    try:
        if not ready.wait(120):
            raise SystemExit(f"the {n} sweep streams did not all open in 120 s")
        opening = time.monotonic() - t0
        time.sleep(2)  # past the connecting
        held = open_streams(url)
        share = cpu_share(pid, 10)
        cpu0, w0 = cpu_s(pid), time.monotonic()
        p50, p99 = healthz_ms(url)
        with_healthz = (cpu_s(pid) - cpu0) / (time.monotonic() - w0)
        frames = sum(received)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        httpx.post(f"{url}/v1/sweeps/{sweep}/cancel")
    print(f"2. {n} readers of a running 4-member sweep's events")
    print(f"   all open after {opening:.1f} s; {held} held; {frames / 1e6:.1f} MB read in all")
    print(
        f"   with no stream open: /healthz p50 {quiet[0]:.1f} ms, p99 {quiet[1]:.1f} ms; server CPU {quiet_cpu:.1%} of a core"
    )
    print(
        f"   /healthz meanwhile: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({verdict(p99, GOAL_P99_MS, ' ms')})"
    )
    print(
        f"   server CPU over 10 s of streams: {share:.1%} of a core ({verdict(share * 100, GOAL_CPU * 100, '%')})"
    )
    print(f"   server CPU over the /healthz window (its 200 requests included): {with_healthz:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stalled", type=int, default=50)
    parser.add_argument("--readers", type=int, default=400)
    parser.add_argument("--history-s", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(
            tmp, max_event_streams="450", max_concurrent_jobs="1", log_level="error"
        )

        def body() -> None:
            stalled_readers(url, proc.pid, args.stalled, args.history_s)
            sweep_readers(url, proc.pid, args.readers)

        def logs() -> list[tuple[str, str]]:
            path = Path(tmp) / "server.log"
            return [("server", path.read_text()[-3000:] if path.exists() else "")]

        def cleanup() -> None:
            proc.terminate()
            proc.wait(30)

        run_interruptible(body, logs, cleanup)


if __name__ == "__main__":
    main()
