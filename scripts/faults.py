"""The faults suite at length: many random rounds of tests/service/fault_rounds.py against a
real server (kill -9 of the server while jobs train, checkpoint and take uploads; one worker
killed; a second server on the same data dir; a full disk), each checked for lost jobs, lost
cancels, half-written or unrecorded files and records without their file.

Run (as root, for the tmpfs the full-disk rounds need; without it they are left out):
    .venv/bin/python scripts/faults.py --rounds 50 [--seed S] [--kinds kill_server,disk_full]

A failed round is reported with its seed and the server log's tail; the next round starts
on a fresh data dir. Exit status 1 if any round failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_engine import TrainConfig, Trainer  # noqa: E402
from tests.service.fault_rounds import KINDS, Rig, run_round  # noqa: E402
from tests.service.faults import tmpfs  # noqa: E402


def fresh_rig(stack: ExitStack, base: Path, n: int, data: bytes, rng: random.Random) -> Rig:
    target = base / f"data{n}"
    try:
        data_dir = stack.enter_context(tmpfs(target, "256m"))
    except BaseException as exc:  # pytest's Skipped: not root, no tmpfs
        print(f"no tmpfs ({exc}); full-disk rounds left out")
        target.mkdir(parents=True, exist_ok=True)
        data_dir = target
    rig = Rig(data_dir, data, rng)
    rig.start()
    stack.callback(rig.stop)
    return rig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="jobs that must succeed, a round")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    trainer = Trainer(TrainConfig(seed=4, steps=50, log_every=25, checkpoint_every=0))
    trainer.run()
    data = trainer.checkpoint().to_bytes()
    print(f"seed {seed}, {args.rounds} rounds of {', '.join(kinds)}")
    ran: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="curvegan-faults-") as tmp, ExitStack() as outer:
        stack = outer.enter_context(ExitStack())
        n = 0
        rig = fresh_rig(stack, Path(tmp), n, data, rng)
        disk = _is_tmpfs(rig.data_dir)
        for i in range(args.rounds):
            kind = rng.choice([k for k in kinds if disk or k != "disk_full"] or ["kill_server"])
            ran[kind] += 1
            t0 = time.monotonic()
            try:
                print(f"round {i + 1}: {run_round(rig, kind, jobs=args.jobs)}", end="")
                print(f" [{time.monotonic() - t0:.1f}s]")
            except Exception:
                failed[kind] += 1
                print(f"round {i + 1}: {kind} FAILED (seed {seed})\n{traceback.format_exc()}")
                print(f"server log tail:\n{rig.primary.log()[-3000:] if rig.servers else ''}")
                stack.close()
                n += 1
                stack = outer.enter_context(ExitStack())
                rig = fresh_rig(stack, Path(tmp), n, data, rng)
    took = time.monotonic() - started
    print(f"\n{args.rounds} rounds in {took:.0f}s (seed {seed}):")
    for kind in kinds:
        print(f"  {kind:14s} {ran[kind]:4d} rounds, {failed[kind]:3d} failed")
    return 1 if failed else 0


def _is_tmpfs(path: Path) -> bool:
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == str(path) and parts[2] == "tmpfs":
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
