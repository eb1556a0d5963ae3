"""Runner figures: how fast a job gets through the embedded runner and the Celery runner, and
what a second worker node adds, in one run against real servers (not a test).

Run: .venv/bin/python benchmarks/runner.py [--repeats N] [--rounds N] [--jobs N] [--quick]

Needs, for the Celery parts, PostgreSQL (--postgres, default postgresql://postgres@127.0.0.1:
5432/postgres: a role that may create databases) and RabbitMQ (--broker, default
amqp://guest:guest@127.0.0.1:5672//); where either is unreachable those parts are skipped.
It starts, on free ports and in a temp dir: a server with the embedded runner (SQLite,
CURVEGAN_MAX_CONCURRENT_JOBS=2), and a cluster: a fresh PostgreSQL database, a queue of its
own on RabbitMQ, file:// checkpoint storage, one API server and one `curvegan worker` node
(--concurrency 2). Server and node logs go to files in the temp dir; their tails are printed
if something fails. Every process group is stopped, the database dropped and the queue
deleted on exit, Ctrl-C included. It prints:

1. the latency of a 1-step job, from POST /v1/jobs until the client sees `succeeded` (a GET
   every 2 ms): p50, p90 and max over --jobs jobs after 3 warm-up jobs, embedded and Celery
   jobs interleaved; and where the median goes, from the job's own timestamps: POST to
   created_at, created_at to started_at (queue and claim), started_at to finished_at (the
   training and its final writes), finished_at to seen by the client.
2. the steps/s of 4 000-step tutorial jobs (default config), one at a time, from POST until
   the client sees `succeeded` (a GET every 100 ms, every 5 ms from 90% of the steps on:
   the end is seen within a few ms, and the GETs take little CPU from the training), next
   to the engine's own steps/s (after a 10-step warm-up run in the same process, as the
   service's workers have run jobs before):
   Trainer(TrainConfig(steps=4000, seed=...)).run() in a subprocess of its own, at the
   workers' niceness (CURVEGAN_WORKER_NICE, 5), one intra-op thread like the workers;
   embedded job, Celery job and engine run interleaved, --repeats times; ratio of medians,
   and where a job's median time goes (POST to started_at, started_at to finished_at,
   finished_at to seen) next to the engine's.
3. two worker nodes against one (Celery): --cluster-jobs 4 000-step jobs queued at once, on
   one node with --concurrency 1, then on two such nodes (the second a process of its own
   on this machine, started fresh for each two-node round and warmed up, as node 1 is, by
   a 200-step job); aggregate steps/s = total steps / (first POST to the last `succeeded`
   seen, polled as in 2); one-node and two-node rounds interleaved (one-two, two-one, ...)
   --rounds times; ratio of medians.
Then a table of every figure next to its goal. This machine is shared and noisy: single runs
move, which is why the figures are medians of interleaved repeats. About 3-4 minutes by
default; --quick (fewer jobs, repeats and rounds) about 1.5.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from _server import Server, run_interruptible

ROOT = Path(__file__).resolve().parents[1]
FINAL = ("succeeded", "failed", "cancelled")
WARMUP_JOBS = 3
GOAL_P50_EMBEDDED_MS = 150.0
GOAL_P50_CELERY_MS = 300.0
GOAL_THROUGHPUT_RATIO = 0.90
GOAL_SCALING_RATIO = 1.8

ENGINE_CODE = """
import os, sys, time
nice = int(sys.argv[3])
if nice:
    os.nice(nice)
from gan_engine import TrainConfig, Trainer
steps, seed = int(sys.argv[1]), int(sys.argv[2])
Trainer(TrainConfig(steps=10, seed=seed)).run()  # first-use imports, as a worker's first job
t0 = time.perf_counter()
Trainer(TrainConfig(steps=steps, seed=seed)).run()
print(steps / (time.perf_counter() - t0))
"""


# ------------------------------------------------------------------ processes


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def base_env() -> dict[str, str]:
    """This environment without any CURVEGAN_* setting: each process gets exactly the ones
    given here, whatever the shell running the benchmark has set."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CURVEGAN_")}


@dataclass
class Proc:
    """A child process in a process group of its own (Ctrl-C in the terminal does not reach
    it; stop() does, and takes whatever it started with it), logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    group_term: bool = False  # SIGTERM to the whole group (a Celery node), else the leader
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited (status {self.proc and self.proc.poll()})")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGCONT)
                if self.group_term:
                    os.killpg(pgid, signal.SIGTERM)
                else:
                    self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Whatever is left of the group (a leader that would not stop, or children it left).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None


def start_server(name: str, tmp: Path, env: dict[str, str], procs: list[Proc | Server]) -> str:
    """The service with exactly ``env`` (no other CURVEGAN_* setting), in a process group of
    its own, logging to ``tmp``/``name``.log; listed in ``procs`` (stopped on exit) before it
    starts; returns its URL once /readyz answers."""
    data_dir = tmp / name
    data_dir.mkdir()
    server = Server(
        data_dir=data_dir,
        env={**env, "CURVEGAN_LOG_LEVEL": "warning"},
        name=name,
        log_path=tmp / f"{name}.log",
        clean_env=True,
        own_group=True,
        ready_timeout=60,
    )
    procs.append(server)
    server.start()
    return server.url


def start_node(
    name: str, concurrency: int, tmp: Path, env: dict[str, str], procs: list[Proc]
) -> Proc:
    node_name = f"{name}@bench"
    starts = len(list(tmp.glob(f"{name}-*.log")))
    node = Proc(
        name,
        [
            sys.executable,
            "-m",
            "curvegan",
            "worker",
            "--node-name",
            node_name,
            "--concurrency",
            str(concurrency),
        ],
        {**env, "CURVEGAN_DATA_DIR": str(tmp / f"{name}-data")},
        tmp / f"{name}-{starts + 1}.log",  # one log per start: "ready." must be this start's
        group_term=True,
    )
    procs.append(node)  # listed before it starts: stopped on exit whatever happens
    node.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        node.check_alive()
        if f"{node_name} ready." in node.log():
            return node
        time.sleep(0.1)
    raise RuntimeError(f"worker node {name} not ready after 60 s")


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for the run, dropped after it; yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"curvegan_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def delete_queue(broker_url: str, queue: str) -> None:
    from kombu import Connection

    try:
        with Connection(broker_url) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception as exc:  # cleanup goes on; the name says what to delete by hand
        print(f"could not delete the queue {queue}: {exc}", file=sys.stderr)


# ------------------------------------------------------------------ measuring


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


# Polling of long jobs: every SLOW_POLL_S while any job is short of FAST_FROM of its steps,
# every FAST_POLL_S after, so that the end is seen within a few ms while the GETs take
# little CPU from the training on this 2-core machine.
SLOW_POLL_S = 0.1
FAST_POLL_S = 0.005
FAST_FROM = 0.9


def run_job(
    client: httpx.Client, config: dict[str, Any], poll_s: tuple[float, float]
) -> dict[str, Any]:
    """POSTs one job and polls it until it succeeds; returns the job with the client's times
    (t0/t_seen on perf_counter, wall0/wall_seen on the wall clock)."""
    wall0, t0 = time.time(), time.perf_counter()
    r = client.post("/v1/jobs", json={"config": config})
    r.raise_for_status()
    job = wait_for(client, [r.json()["id"]], poll_s)[0]
    return {**job, "t0": t0, "wall0": wall0}


def wait_for(
    client: httpx.Client,
    ids: list[str],
    poll_s: tuple[float, float] = (SLOW_POLL_S, FAST_POLL_S),
    timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """Polls the jobs (a GET for each unfinished one, then a sleep) until all have succeeded;
    each returned job carries t_seen / wall_seen, when the client first saw it succeeded.
    The sleep is poll_s[1] once every unfinished job is running past FAST_FROM, else
    poll_s[0]."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while True:
        near_end = True
        for job_id in ids:
            if job_id in done:
                continue
            r = client.get(f"/v1/jobs/{job_id}")
            r.raise_for_status()
            job = r.json()
            if job["state"] in FINAL:
                if job["state"] != "succeeded":
                    raise RuntimeError(f"job {job_id} {job['state']}: {job['error']}")
                done[job_id] = {**job, "t_seen": time.perf_counter(), "wall_seen": time.time()}
            elif job["state"] != "running" or job["progress"] < FAST_FROM:
                near_end = False
        if len(done) == len(ids):
            return [done[i] for i in ids]
        if time.monotonic() > deadline:
            missing = sorted(set(ids) - set(done))
            raise RuntimeError(f"jobs not done after {timeout:.0f} s: {missing}")
        time.sleep(poll_s[1] if near_end else poll_s[0])


def engine_steps_per_s(steps: int, seed: int, nice: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", ENGINE_CODE, str(steps), str(seed), str(nice)],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def fmt(values: list[float], spec: str = ".0f") -> str:
    return " ".join(format(v, spec) for v in values)


@dataclass
class Row:
    figure: str
    value: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Target:
    label: str
    client: httpx.Client
    jobs: list[dict[str, Any]] = field(default_factory=list)  # part 1
    rates: list[float] = field(default_factory=list)  # part 2, client-seen
    spans: list[tuple[float, float, float]] = field(default_factory=list)  # part 2, seconds


# ------------------------------------------------------------------ the three parts


def latency(targets: list[Target], n_jobs: int, rows: list[Row]) -> None:
    warmups: dict[str, list[float]] = {t.label: [] for t in targets}
    for i in range(WARMUP_JOBS + n_jobs):
        for t in targets:
            job = run_job(t.client, {"steps": 1, "seed": i}, (0.002, 0.002))
            if i >= WARMUP_JOBS:
                t.jobs.append(job)
            else:
                warmups[t.label].append((job["t_seen"] - job["t0"]) * 1e3)
    print(f"1. 1-step job, POST until `succeeded` seen (GET every 2 ms), {n_jobs} jobs each")
    for t in targets:
        goal = GOAL_P50_EMBEDDED_MS if t.label == "embedded" else GOAL_P50_CELERY_MS
        total = [(j["t_seen"] - j["t0"]) * 1e3 for j in t.jobs]
        p50, p90, worst = statistics.median(total), pct(total, 0.9), max(total)
        parts = [
            statistics.median((ts(j["created_at"]) - j["wall0"]) * 1e3 for j in t.jobs),
            statistics.median((ts(j["started_at"]) - ts(j["created_at"])) * 1e3 for j in t.jobs),
            statistics.median((ts(j["finished_at"]) - ts(j["started_at"])) * 1e3 for j in t.jobs),
            statistics.median((j["wall_seen"] - ts(j["finished_at"])) * 1e3 for j in t.jobs),
        ]
        print(
            f"  {t.label:9} p50 {p50:6.1f} ms  p90 {p90:6.1f} ms  max {worst:6.1f} ms"
            f"   goal p50 < {goal:.0f} ms: {'met' if p50 < goal else 'MISSED'}"
        )
        print(
            "            medians: POST->created {:.1f}, created->started {:.1f}, "
            "started->finished {:.1f}, finished->seen {:.1f} ms".format(*parts)
        )
        print(f"            warm-up jobs (first ones on fresh workers): {fmt(warmups[t.label])} ms")
        rows.append(
            Row(f"1-step job p50, {t.label}", f"{p50:.0f} ms", f"< {goal:.0f} ms", p50 < goal)
        )
        rows.append(Row(f"1-step job p90 / max, {t.label}", f"{p90:.0f} / {worst:.0f} ms"))


def throughput(targets: list[Target], steps: int, repeats: int, nice: int, rows: list[Row]) -> None:
    engine: list[float] = []
    actions: list[Callable[[int], None]] = []
    for t in targets:

        def job(seed: int, t: Target = t) -> None:
            j = run_job(t.client, {"steps": steps, "seed": seed}, (SLOW_POLL_S, FAST_POLL_S))
            t.rates.append(steps / (j["t_seen"] - j["t0"]))
            started, finished = ts(j["started_at"]), ts(j["finished_at"])
            t.spans.append((started - j["wall0"], finished - started, j["wall_seen"] - finished))

        actions.append(job)
    actions.append(lambda seed: engine.append(engine_steps_per_s(steps, seed, nice)))
    for r in range(repeats):
        for k in range(len(actions)):  # the order rotates, so no one always goes first
            actions[(r + k) % len(actions)](100 + r)
    e = statistics.median(engine)
    print(
        f"2. {steps}-step tutorial jobs one at a time, POST until `succeeded` seen "
        f"(polled), median of {repeats}"
    )
    print(f"  engine alone      {e:6.0f} steps/s   runs: {fmt(engine)}")
    for t in targets:
        m = statistics.median(t.rates)
        ratio = m / e
        met = ratio >= GOAL_THROUGHPUT_RATIO
        print(
            f"  {t.label:9} job     {m:6.0f} steps/s   ratio {ratio:.2f}"
            f"   goal >= {GOAL_THROUGHPUT_RATIO:.2f}: {'met' if met else 'MISSED'}"
            f"   runs: {fmt(t.rates)}"
        )
        spans = [statistics.median(s[k] for s in t.spans) for k in range(3)]
        print(
            "            median s: POST->started {:.3f}, started->finished {:.3f}, "
            "finished->seen {:.3f}; engine {:.3f}".format(*spans, steps / e)
        )
        rows.append(
            Row(
                f"{steps}-step job / engine, {t.label}",
                f"{ratio:.2f}",
                f">= {GOAL_THROUGHPUT_RATIO:.2f}",
                met,
            )
        )
    rows.append(Row("engine alone", f"{e:.0f} steps/s"))


def scaling(
    client: httpx.Client,
    tmp: Path,
    env: dict[str, str],
    procs: list[Proc],
    n_jobs: int,
    steps: int,
    rounds: int,
    rows: list[Row],
) -> None:
    start_node("n1", 1, tmp, env, procs)
    one: list[float] = []
    two: list[float] = []
    spread: list[str] = []
    server: list[float] = []  # the same to the last finished_at, by the server's clock
    server_one: list[float] = []
    server_two: list[float] = []
    seed = 1000

    def burst() -> tuple[float, list[dict[str, Any]]]:
        nonlocal seed
        wall0, t0 = time.time(), time.perf_counter()
        ids = []
        for _ in range(n_jobs):
            seed += 1
            r = client.post("/v1/jobs", json={"config": {"steps": steps, "seed": seed}})
            r.raise_for_status()
            ids.append(r.json()["id"])
        jobs = wait_for(client, ids)
        server.append(n_jobs * steps / (max(ts(j["finished_at"]) for j in jobs) - wall0))
        return n_jobs * steps / (max(j["t_seen"] for j in jobs) - t0), jobs

    def warm(nodes: set[str]) -> None:
        """Short jobs at once, one per node (each reserves one message), until every node
        has run one: a fresh process's first job pays one-time imports (about 1 s)."""
        seen: set[str] = set()
        for _ in range(5):
            ids = [
                client.post("/v1/jobs", json={"config": {"steps": 200, "seed": 0}}).json()["id"]
                for _ in nodes
            ]
            seen |= {(j["worker"] or "::").split(":")[1] for j in wait_for(client, ids)}
            if nodes <= seen:
                return
        raise RuntimeError(f"warm-up jobs never reached {sorted(nodes - seen)}")

    warm({"n1@bench"})
    for r in range(rounds):
        for two_nodes in (r % 2 == 1, r % 2 == 0):  # one-two, two-one, ...
            if not two_nodes:
                one.append(burst()[0])
                server_one.append(server[-1])
                continue
            n2 = start_node("n2", 1, tmp, env, procs)  # stays listed, for its log
            try:
                warm({"n1@bench", "n2@bench"})
                rate, jobs = burst()
            finally:
                n2.stop()
            two.append(rate)
            server_two.append(server[-1])
            on_n2 = sum(1 for j in jobs if ":n2@" in (j["worker"] or ""))
            spread.append(f"{n_jobs - on_n2}+{on_n2}")
    a, b = statistics.median(one), statistics.median(two)
    ratio = b / a
    met = ratio >= GOAL_SCALING_RATIO
    print(
        f"3. Celery, {n_jobs} jobs x {steps} steps queued at once, nodes with --concurrency 1, "
        f"aggregate steps/s (first POST to last `succeeded` seen), median of {rounds}"
    )
    print(f"  one node          {a:6.0f} steps/s   runs: {fmt(one)}")
    print(
        f"  two nodes         {b:6.0f} steps/s   ratio {ratio:.2f}"
        f"   goal >= {GOAL_SCALING_RATIO:.1f}: {'met' if met else 'MISSED'}"
        f"   runs: {fmt(two)}   (jobs per node n1+n2: {' '.join(spread)})"
    )
    sa, sb = statistics.median(server_one), statistics.median(server_two)
    print(
        f"  to the last finished_at instead: one node {sa:.0f}, two nodes {sb:.0f} steps/s, "
        f"ratio {sb / sa:.2f}"
    )
    rows.append(Row("one Celery node, aggregate", f"{a:.0f} steps/s"))
    rows.append(Row("two nodes / one node", f"{ratio:.2f}", f">= {GOAL_SCALING_RATIO:.1f}", met))


def summary(rows: list[Row]) -> None:
    print()
    print(f"{'figure':44} {'measured':>16}  {'goal':10} ")
    print("-" * 80)
    for row in rows:
        verdict = "" if row.met is None else ("met" if row.met else "MISSED")
        print(f"{row.figure:44} {row.value:>16}  {row.goal:10} {verdict}")


# ------------------------------------------------------------------ main


def run(
    args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack, procs: list[Proc]
) -> None:
    nice = int(os.environ.get("CURVEGAN_WORKER_NICE", "5"))
    common = {**base_env(), "CURVEGAN_WORKER_NICE": str(nice)}
    rows: list[Row] = []
    print(f"{os.cpu_count()} cores; logs in {tmp}")

    embedded_url = start_server(
        "embedded",
        tmp,
        {**common, "CURVEGAN_EXECUTOR": "local", "CURVEGAN_MAX_CONCURRENT_JOBS": "2"},
        procs,
    )
    targets = [
        Target("embedded", stack.enter_context(httpx.Client(base_url=embedded_url, timeout=30)))
    ]

    pg, mq = urlsplit(args.postgres), urlsplit(args.broker)
    missing = [
        what
        for what, host, port in (
            ("PostgreSQL", pg.hostname, pg.port or 5432),
            ("RabbitMQ", mq.hostname, mq.port or 5672),
        )
        if not reachable(host or "127.0.0.1", port)
    ]
    cluster_env: dict[str, str] = {}
    if missing:
        print(f"Celery parts skipped: {' and '.join(missing)} not reachable")
    else:
        db_url = stack.enter_context(fresh_database(args.postgres))
        queue = f"curvegan_bench_{uuid.uuid4().hex[:12]}"
        stack.callback(delete_queue, args.broker, queue)
        storage = tmp / "shared"
        storage.mkdir()
        cluster_env = {
            **common,
            "CURVEGAN_EXECUTOR": "celery",
            "CURVEGAN_DATABASE_URL": db_url,
            "CURVEGAN_BROKER_URL": args.broker,
            "CURVEGAN_QUEUE": queue,
            "CURVEGAN_STORAGE_URL": f"file://{storage}",
        }
        celery_url = start_server("celery-api", tmp, cluster_env, procs)
        start_node("n0", 2, tmp, cluster_env, procs)
        targets.append(
            Target("Celery", stack.enter_context(httpx.Client(base_url=celery_url, timeout=30)))
        )

    t_start = time.perf_counter()
    latency(targets, args.jobs, rows)
    throughput(targets, args.steps, args.repeats, nice, rows)
    if not missing:
        for p in procs:
            if p.name in ("n0", "embedded"):
                p.stop()  # part 3 alone on the machine: the two cores go to its nodes
        scaling(
            targets[1].client,
            tmp,
            cluster_env,
            procs,
            args.cluster_jobs,
            args.steps,
            args.rounds,
            rows,
        )
    summary(rows)
    print(f"(measured in {time.perf_counter() - t_start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="1-step jobs measured per runner")
    parser.add_argument("--repeats", type=int, default=5, help="job/engine repeats in part 2")
    parser.add_argument("--rounds", type=int, default=4, help="one- and two-node rounds, part 3")
    parser.add_argument("--cluster-jobs", type=int, default=4, help="jobs queued at once, part 3")
    parser.add_argument("--steps", type=int, default=4000, help="steps of parts 2 and 3's jobs")
    parser.add_argument("--quick", action="store_true", help="10 jobs, 2 repeats, 1 round")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.repeats, args.rounds = 10, 2, 1

    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="curvegan-bench-") as tmp_dir:
        stack = contextlib.ExitStack()

        def cleanup() -> None:
            for p in reversed(procs):
                p.stop()
            stack.close()  # clients, then the queue and the database

        run_interruptible(
            lambda: run(args, Path(tmp_dir), stack, procs),
            lambda: [(p.name, p.log()) for p in procs],
            cleanup,
        )


if __name__ == "__main__":
    main()
