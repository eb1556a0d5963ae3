"""``curvegan``: the command line for a curvegan server: its arguments, and its exit codes.

Exit codes: 0 ok, 1 the job (or a sweep's member) failed, or the server refused the request,
2 usage error, 3 server unreachable. ``--url`` and ``--api-key`` default to CURVEGAN_URL / CURVEGAN_API_KEY.
What each command does is in ``_cli_commands.py``; how it prints, in ``_cli_output.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from ._cli_commands import (
    FAILED,
    UNREACHABLE,
    USAGE,
    cmd_checkpoints,
    cmd_jobs,
    cmd_plot,
    cmd_sample,
    cmd_serve,
    cmd_sweep,
    cmd_train,
    cmd_worker,
)
from .client import DEFAULT_URL, Client
from .errors import ApiError, CurveganError, UnavailableError, UsageError, ValidationError
from .models import STATES


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _paged(action: argparse.ArgumentParser) -> None:
    action.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    action.add_argument("--offset", type=int, default=0, help="skip this many first (default 0)")
    action.add_argument("--json", action="store_true", help="print the page as JSON")


def _own_timeout(action: argparse.ArgumentParser, text: str) -> None:
    # SUPPRESS: without it this default (None) overwrites the global --timeout
    action.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curvegan",
        description="Train GANs and sample curves on a curvegan server.",
        epilog="Exit codes: 0 ok, 1 job failed or request refused, 2 usage error, 3 server unreachable.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("CURVEGAN_URL", DEFAULT_URL),
        help=f"the server's root URL, scheme included (default: env CURVEGAN_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CURVEGAN_API_KEY") or None,
        help="API key (env CURVEGAN_API_KEY)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up waiting after this many seconds"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server here (needs curvegan[server])")
    serve.add_argument(
        "--host", help="address to listen on (default CURVEGAN_HOST, else 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port (default CURVEGAN_PORT, else 8000)")
    serve.add_argument(
        "--data-dir",
        help="where the database and checkpoints live (default CURVEGAN_DATA_DIR, else ./checkpoints)",
    )
    serve.set_defaults(func=cmd_serve, needs_client=False)

    worker = sub.add_parser(
        "worker",
        help="run a cluster worker node here (needs curvegan[server] and a broker)",
        description=(
            "Run a Celery worker node that trains the jobs a cluster's API servers publish. "
            "Its settings come from CURVEGAN_* environment variables, the same as the API "
            "servers': CURVEGAN_BROKER_URL, CURVEGAN_DATABASE_URL, CURVEGAN_STORAGE_URL and "
            "CURVEGAN_QUEUE must match theirs. On SIGTERM running jobs save a checkpoint and "
            "go back to the queue. See docs/scaling.md."
        ),
    )
    worker.add_argument(
        "--node-name",
        metavar="NAME",
        help="Celery node name, unique in the cluster, e.g. n1@%%h (default celery@HOSTNAME)",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="jobs trained at once, one process each "
        "(default CURVEGAN_WORKER_CONCURRENCY, else the CPU count)",
    )
    worker.add_argument(
        "--loglevel",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level (default info)",
    )
    worker.set_defaults(func=cmd_worker, needs_client=False)

    train = sub.add_parser("train", help="start a training job (prints its id)")
    train.add_argument("--steps", type=int, help="training steps (default the preset's)")
    train.add_argument("--seed", type=int, help="same seed and config, same run")
    train.add_argument("--name", help="a name for the job")
    train.add_argument("--preset", help="a named recipe: tutorial (default), recommended or fast")
    train.add_argument(
        "--resume-from", metavar="CHECKPOINT", help="continue from this checkpoint's weights"
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any engine config field, e.g. --set lr_g=3e-4 (repeatable)",
    )
    train.add_argument(
        "--wait", action="store_true", help="follow with a progress bar until it ends"
    )
    train.set_defaults(func=cmd_train)

    jobs = sub.add_parser("jobs", help="list, show, wait for, cancel or delete jobs")
    jobs_sub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    jl = jobs_sub.add_parser("list", help="jobs, newest first")
    jl.add_argument(
        "--state",
        choices=list(STATES),
        help="only jobs in this state",
    )
    jl.add_argument("--sweep", metavar="SWEEP_ID", help="only this sweep's member jobs")
    _paged(jl)
    for action, text in (
        ("show", "one job as JSON"),
        ("cancel", "stop a job (it keeps a final checkpoint)"),
        ("delete", "delete a finished job"),
        ("wait", "follow a job until it ends"),
        ("metrics", "a job's logged metrics"),
    ):
        p = jobs_sub.add_parser(action, help=text)
        p.add_argument("id", metavar="JOB_ID", help="the job's id")
        if action == "wait":
            _own_timeout(p, "give up after this many seconds")
    jobs.set_defaults(func=cmd_jobs)

    sw = sub.add_parser(
        "sweep",
        help="train a recipe's variations as one sweep: create, list, show, wait, cancel, delete",
        description=(
            "A sweep is a base recipe (--preset, --set) and its variations, trained as member "
            "jobs; the server picks the best member by --best-by."
        ),
    )
    sw_sub = sw.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with sweeps"
    )
    sc = sw_sub.add_parser(
        "create",
        help="queue a sweep (prints its id)",
        # Raw: the examples below keep their lines.
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Queue a sweep: one member per combination of the --vary values (a grid), or one\n"
            "per object in a --members file. With --wait, follow it and print a leaderboard."
        ),
        epilog=(
            "examples:\n"
            "  curvegan sweep create --set steps=3000 --vary seed=0..3 --vary lr_g=1e-4,2e-4 "
            "--wait\n"
            "  curvegan sweep create --preset recommended --members m.json --best-by in_band\n"
            '      (m.json: [{"seed": 1}, {"seed": 2, "hidden": 64}])'
        ),
    )
    sc.add_argument(
        "--preset",
        help="the recipe every member starts from: tutorial (default), recommended, fast",
    )
    sc.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a base config field for every member, e.g. --set steps=3000 (repeatable)",
    )
    grid = sc.add_mutually_exclusive_group(required=True)
    grid.add_argument(
        "--vary",
        action="append",
        metavar="KEY=SPEC",
        help="a field to vary: comma-separated values (lr_g=1e-4,2e-4; each JSON, else a bare "
        "word) or an inclusive integer range (seed=0..15); repeat for a grid of all combinations",
    )
    grid.add_argument(
        "--members",
        metavar="FILE.json",
        help='the members as a JSON list of objects over the base, e.g. [{"seed": 1}, '
        '{"seed": 2, "hidden": 64}] ("-" reads stdin)',
    )
    sc.add_argument("--name", help="a name for the sweep (its member jobs share it)")
    sc.add_argument(
        "--best-by",
        metavar="METRIC",
        help="the metric that picks the best member: w1_a (default, lowest), resid, in_band, "
        "d_score, d_loss, d_accuracy",
    )
    sc.add_argument(
        "--wait",
        action="store_true",
        help="follow it with a live line until every member ends, then print the leaderboard "
        "(exit 1 if a member failed)",
    )
    sl = sw_sub.add_parser("list", help="sweeps, newest first")
    _paged(sl)
    for action, text in (
        ("show", "a sweep's leaderboard: its members, best first"),
        ("wait", "follow a sweep until every member ends, then print its leaderboard"),
        ("cancel", "stop every member not yet finished (each keeps a final checkpoint)"),
        ("delete", "delete a finished sweep and its member jobs (checkpoints stay)"),
    ):
        p = sw_sub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("id", metavar="SWEEP_ID", help="the sweep's id")
        if action in ("show", "wait"):
            p.add_argument("--json", action="store_true", help="print the sweep as JSON")
        if action == "wait":
            _own_timeout(p, "give up after this many seconds (exit 1)")
    sw.set_defaults(func=cmd_sweep)

    ck = sub.add_parser("checkpoints", help="list, show, download, upload or delete checkpoints")
    ck_sub = ck.add_subparsers(dest="action", required=True, metavar="ACTION")
    cl = ck_sub.add_parser("list", help="checkpoints, newest first")
    cl.add_argument("--job", help="only this job's")
    _paged(cl)
    for action, text in (("show", "one checkpoint as JSON"), ("delete", "delete a checkpoint")):
        p = ck_sub.add_parser(action, help=text)
        p.add_argument("id", metavar="CHECKPOINT_ID", help="the checkpoint's id")
    dl = ck_sub.add_parser("download", help="save the safetensors file")
    dl.add_argument("id", metavar="CHECKPOINT_ID", help="the checkpoint's id")
    dl.add_argument("-o", "--output", help="file name (default ID.safetensors)")
    up = ck_sub.add_parser("upload", help="upload a safetensors checkpoint file (prints its id)")
    up.add_argument("file", help="a .safetensors file saved by curvegan")
    ck.set_defaults(func=cmd_checkpoints)

    sample = sub.add_parser("sample", help="draw curves from a checkpoint or a job's latest")
    sample.add_argument(
        "checkpoint", nargs="?", metavar="CHECKPOINT_ID", help="the checkpoint to sample"
    )
    sample.add_argument("--job", metavar="JOB_ID", help="or this job's latest checkpoint")
    sample.add_argument("-n", type=int, default=10, help="number of curves (default 10)")
    sample.add_argument("--seed", type=int, help="same seed, same curves")
    sample.add_argument(
        "--format",
        choices=["json", "csv", "npy"],
        default="json",
        help="json (default), csv (a row per curve) or npy (needs -o)",
    )
    sample.add_argument("-o", "--output", help="write to this file instead of stdout")
    sample.set_defaults(func=cmd_sample)

    plot = sub.add_parser(
        "plot", help="draw a job's or checkpoint's curves between the artist's bounds"
    )
    plot.add_argument(
        "id", metavar="JOB|CHECKPOINT", help="a job id (its latest checkpoint) or a checkpoint id"
    )
    plot.add_argument("-o", "--output", required=True, help="the figure's file: .png or .svg")
    plot.add_argument("-n", type=int, default=3, help="number of curves, 1..64 (default 3)")
    plot.add_argument("--seed", type=int, help="same seed, same curves")
    plot.add_argument("--width", type=int, default=640, help="pixels (default 640)")
    plot.add_argument("--height", type=int, default=480, help="pixels (default 480)")
    plot.set_defaults(func=cmd_plot)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    func: Callable[..., int] = args.func
    try:
        if not getattr(args, "needs_client", True):
            return func(args, None, out, err)
        with Client(args.url, api_key=args.api_key) as api:
            return func(args, api, out, err)
    except (UsageError, ValidationError) as exc:
        print(f"error: {exc.message if isinstance(exc, ApiError) else exc}", file=err)
        return USAGE
    except UnavailableError as exc:
        print(f"error: server unreachable: {exc}", file=err)
        return UNREACHABLE
    except ApiError as exc:
        print(f"error: {exc.message}", file=err)
        return FAILED
    except (CurveganError, TimeoutError) as exc:  # JobFailedError, a timeout (an OSError too)
        print(f"error: {exc}", file=err)
        return FAILED
    except BrokenPipeError:
        # the reader went away (`curvegan jobs list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except OSError as exc:  # an -o/--output or upload path that cannot be used
        print(f"error: {exc}", file=err)
        return USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
