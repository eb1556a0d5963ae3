"""Command line for the engine: train with live progress, and sample from a checkpoint.

python -m gan_engine train [--preset P] [--steps N] [--seed S] [--set KEY=VALUE] [--out DIR]
                         [--resume FILE]
python -m gan_engine sample CHECKPOINT [-n N] [--seed S] [--format json|csv|npy] [-o FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .config import PRESETS, ConfigError, TrainConfig
from .loop import LogRecord, TrainingDiverged
from .population import Population
from .sampling import CurveSampler


def _key_value(text: str) -> tuple[str, Any]:
    """``--set lr_g=3e-4``: the value as JSON where it parses (numbers, lists, true), else
    the bare word (``--set loss=non_saturating``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _train(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = dict(args.set or [])
    overrides |= {
        k: v
        for k, v in {
            "steps": args.steps,
            "seed": args.seed,
            "loss": args.loss,
            "latent": args.latent,
            "g_ema": args.g_ema,
            "log_every": args.log_every,
            "checkpoint_every": args.checkpoint_every,
        }.items()
        if v is not None
    }
    try:
        if args.resume:
            if args.preset != "tutorial":
                raise ConfigError("preset", "cannot change when resuming")
            ckpt = load_checkpoint(args.resume)
            # A resumed run keeps its recipe; only its length may change.
            changed = sorted(set(overrides) - {"steps"})
            if changed:
                raise ConfigError(changed[0], "cannot change when resuming; only --steps can")
            if "steps" in overrides:
                ckpt = replace(ckpt, config=ckpt.config.replace(steps=overrides["steps"]))
            pop = Population.from_checkpoints([ckpt])
        else:
            # A population of one: the engine jobs train with, the same steps and checkpoints.
            pop = Population([TrainConfig.from_preset(args.preset, **overrides)])
    except (ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = pop.config
    run_dir = Path(args.out) / f"run-{datetime.now(UTC):%Y%m%d-%H%M%S}-seed{cfg.seed}"
    print(f"training {cfg.steps} steps, seed {cfg.seed}; checkpoints in {run_dir}", flush=True)
    tty = sys.stdout.isatty()
    start, start_step = time.perf_counter(), pop.step_count

    def on_log(records: dict[int, LogRecord]) -> None:
        r = records[0]
        rate = (r.step - start_step) / max(time.perf_counter() - start, 1e-9)
        eta = (cfg.steps - r.step) / rate if rate else 0.0
        line = (
            f"step {r.step:>7}/{cfg.steps}  d_loss {r.d_loss:.4f}  g_loss {r.g_loss:.4f}  "
            f"d_acc {r.d_accuracy:.3f}  d_score {r.d_score:.3f}  in_band {r.in_band:.3f}  "
            f"w1_a {r.w1_a:.4f}  {rate:,.0f} steps/s  eta {eta:.0f}s"
        )
        # On a terminal one line updates in place, with a lasting line every 10 logs.
        if tty:
            end = "\n" if r.step % (cfg.log_every * 10) == 0 or r.step == cfg.steps else ""
            print(f"\r{line}", end=end, flush=True)
        else:
            print(line, flush=True)

    saved: list[Path] = []

    def on_checkpoint(ckpts: dict[int, Checkpoint]) -> None:
        ckpt = ckpts[0]
        path = run_dir / f"step-{ckpt.step:08d}.safetensors"
        ckpt.save(path)
        saved.append(path)

    try:
        result = pop.run(on_log=on_log, on_checkpoint=on_checkpoint)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except TrainingDiverged as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    if tty:
        print()
    print(f"done: step {result.step}; latest checkpoint {saved[-1] if saved else 'none'}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    try:
        sampler = CurveSampler.from_checkpoint(load_checkpoint(args.checkpoint))
        if args.n < 1:
            raise ValueError(f"-n must be at least 1, got {args.n}")
        out = sampler.sample(args.n, seed=args.seed)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "npy" and not args.output:
        print("error: --format npy needs -o FILE", file=sys.stderr)
        return 2
    try:
        if args.format == "npy":
            with open(args.output, "wb") as fh:  # np.save(name) would append .npy to it
                np.save(fh, out.curves, allow_pickle=False)
        else:
            with contextlib.ExitStack() as stack:
                stream = stack.enter_context(open(args.output, "w")) if args.output else sys.stdout
                _write_text(stream, args.format, out.x, out.curves, out.seed)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if out.seed is not None:
        print(f"seed {out.seed}", file=sys.stderr)
    return 0


def _write_text(
    stream: TextIO, fmt: str, x: np.ndarray, curves: np.ndarray, seed: int | None
) -> None:
    if fmt == "json":
        json.dump({"x": x.tolist(), "curves": curves.tolist(), "seed": seed}, stream)
        stream.write("\n")
    else:  # csv: a header row y0..y14, then one curve per row
        header = ",".join(f"y{i}" for i in range(curves.shape[1]))
        np.savetxt(stream, curves, delimiter=",", fmt="%.9g", header=header, comments="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gan_engine", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the GAN with live progress")
    train.add_argument(
        "--preset",
        default="tutorial",
        choices=list(PRESETS),
        help="the recipe the other options override (default: tutorial)",
    )
    train.add_argument("--steps", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--loss", choices=["minimax", "non_saturating"])
    train.add_argument("--latent", choices=["normal", "uniform"])
    train.add_argument("--g-ema", type=float, dest="g_ema")
    train.add_argument("--log-every", type=int, dest="log_every")
    train.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    train.add_argument(
        "--set",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="any config field, e.g. --set lr_g=3e-4 --set g_layers=2 (repeatable)",
    )
    train.add_argument("--out", default="checkpoints", help="directory for checkpoints")
    train.add_argument("--resume", help="checkpoint file to continue from")
    train.set_defaults(func=_train)
    sample = sub.add_parser("sample", help="draw curves from a checkpoint")
    sample.add_argument("checkpoint")
    sample.add_argument("-n", type=int, default=10)
    sample.add_argument("--seed", type=int)
    sample.add_argument("--format", choices=["json", "csv", "npy"], default="json")
    sample.add_argument("-o", "--output")
    sample.set_defaults(func=_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
