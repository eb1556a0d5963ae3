"""What one long job leaves behind (issue 20): a 100 000-step job logging and checkpointing
every step, trained by the real run path (service/runners/run.py) in this process over SQLite
and checkpoint files in a temp dir, for a fixed wall budget.

Printed every few seconds: the step reached, the database's bytes (file + WAL), the job's
metric rows and how many still hold preview curves, its checkpoint records, and the files and
bytes on disk, against the bounds (CURVEGAN_MAX_METRIC_ROWS, CURVEGAN_KEEP_CHECKPOINTS). Then
the growth per step over the second half of the run, once the bounds are reached: flat.
`--unbounded` runs the same job with bounds too large to reach, for the growth they stop.

A step that logs evaluates the job's quality and writes a row: 100 000 such steps take far
longer than the budget on 2 cores, so the run stops at the budget and says where it got.

    .venv/bin/python benchmarks/growth.py [--seconds 50] [--n-points 1024] [--unbounded]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _server import ROOT  # noqa: F401 (puts the root on sys.path)

from gan_engine import TrainConfig
from service.runners.run import run_claimed
from service.runners.worker import WorkerContext, warm_up
from service.storage import LocalStorage
from service.store import Store


@dataclass
class Snapshot:
    seconds: float
    step: int
    db_bytes: int
    rows: int
    curve_rows: int
    records: int
    files: int
    file_bytes: int


def snapshot(ctx: WorkerContext, db: Path, files: Path, job_id: str, t0: float) -> Snapshot:
    job = ctx.store.get_job(job_id)
    with sqlite3.connect(db) as conn:
        rows, curve_rows = conn.execute(
            "SELECT count(*), count(curves) FROM metrics WHERE job_id = ?", (job_id,)
        ).fetchone()
    on_disk = [p.stat().st_size for p in files.glob("*.safetensors")]
    return Snapshot(
        seconds=time.monotonic() - t0,
        step=job.step if job else 0,
        db_bytes=sum(
            os.stat(f"{db}{s}").st_size for s in ("", "-wal") if os.path.exists(f"{db}{s}")
        ),
        rows=rows,
        curve_rows=curve_rows,
        records=ctx.store.list_checkpoints(job_id, 1, 0).total,
        files=len(on_disk),
        file_bytes=sum(on_disk),
    )


def run(
    seconds: float, n_points: int, every_s: float, max_rows: int, unbounded: bool
) -> list[Snapshot]:
    with tempfile.TemporaryDirectory() as tmp:
        db, files = Path(tmp) / "curvegan.db", Path(tmp) / "files"
        store = Store(f"sqlite:///{db}")
        store.migrate()
        keep, cap = (10**5, 10**7) if unbounded else (5, max_rows)
        ctx = WorkerContext(
            store, LocalStorage(files), lease_s=15.0, keep_checkpoints=keep, max_metric_rows=cap
        )
        # The smallest network and batch the config allows, so the most steps fit the budget.
        config = TrainConfig(
            steps=100_000,
            log_every=1,
            checkpoint_every=1,
            batch_size=1,
            hidden=1,
            n_ideas=1,
            n_points=n_points,
            seed=1,
        )
        store.create_job(
            job_id="j",
            name=None,
            config=config.to_dict(),
            step=0,
            resumed_from=None,
            idempotency_key=None,
            request_hash=None,
        )
        claimed = store.claim("bench", ctx.lease_s, "j")
        assert claimed is not None
        print(
            f"\n{'unbounded' if unbounded else 'bounded'}: keep {keep} checkpoints, "
            f"max {cap} metric rows, n_points {n_points}, {seconds:.0f} s budget"
        )
        print(" secs    step   db KB   rows  curves  ckpts  files   files KB")
        shots: list[Snapshot] = []
        t0 = time.monotonic()
        state = {"next": 0.0, "cancelled": False}

        def tick() -> None:
            now = time.monotonic() - t0
            if now < state["next"]:
                return
            state["next"] = now + every_s
            s = snapshot(ctx, db, files, "j", t0)
            shots.append(s)
            print(
                f"{s.seconds:5.1f} {s.step:7d} {s.db_bytes / 1024:7.0f} {s.rows:6d} "
                f"{s.curve_rows:7d} {s.records:6d} {s.files:6d} {s.file_bytes / 1024:10.1f}",
                flush=True,
            )
            if now >= seconds and not state["cancelled"]:
                state["cancelled"] = True
                store.request_cancel("j")

        run_claimed(ctx, [claimed], tick=tick)
        shots.append(snapshot(ctx, db, files, "j", t0))
        store.dispose()
        return shots


def growth(shots: list[Snapshot]) -> str:
    """Bytes per step over the run's second half."""
    half = [s for s in shots if s.seconds >= shots[-1].seconds / 2]
    a, b = half[0], half[-1]
    steps = max(1, b.step - a.step)
    return (
        f"over steps {a.step}..{b.step}: database {(b.db_bytes - a.db_bytes) / steps:+.1f} B/step, "
        f"rows {(b.rows - a.rows) / steps:+.3f}/step, "
        f"checkpoint files {(b.file_bytes - a.file_bytes) / steps:+.1f} B/step"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=50.0)
    parser.add_argument("--n-points", type=int, default=1024)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between snapshots")
    # Below the default 10 000: the bound must be reached within the budget to show it holds.
    parser.add_argument("--max-rows", type=int, default=500, help="CURVEGAN_MAX_METRIC_ROWS")
    parser.add_argument("--unbounded", action="store_true")
    args = parser.parse_args()
    warm_up()
    shots = run(args.seconds, args.n_points, args.every, args.max_rows, args.unbounded)
    last = shots[-1]
    print(
        f"reached step {last.step} of 100000 in {last.seconds:.0f} s "
        f"({last.step / last.seconds:.0f} steps/s)"
    )
    print(growth(shots))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
