"""``curvegan``: the command line for a curvegan server.

Exit codes: 0 ok, 1 the job (or a sweep's member) failed, or the server refused the request,
2 usage error, 3 server unreachable. ``--url`` and ``--api-key`` default to CURVEGAN_URL / CURVEGAN_API_KEY.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._calls import figure_format
from .client import DEFAULT_URL, Client
from .errors import (
    ApiError,
    CurveganError,
    JobFailedError,
    UnavailableError,
    UsageError,
    ValidationError,
)
from .models import FINAL_STATES, Job, Sweep, SweepSummary

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
# --vary seed=0..15: an inclusive integer range. Bounded so a typo (0..10000000) is a usage
# error here rather than a huge list built, sent and refused by the server's member limit.
_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)")
MAX_RANGE = 10_000
LEADERBOARD_METRICS = ("w1_a", "in_band", "resid", "d_score")


# ---------------------------------------------------------------- output helpers
def _table(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _job_row(job: Job) -> dict[str, Any]:
    q = job.quality
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "step": f"{job.step}/{job.steps}",
        "d_score": job.metrics.d_score if job.metrics else None,
        "w1_a": q.w1_a if q else None,
        "in_band": q.in_band if q else None,
        "created": job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _dump(model: Any, out: TextIO) -> None:
    print(model.model_dump_json(indent=2), file=out)


class Progress:
    """A one-line progress bar on a terminal; a line every 10% elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last_decile = -1
        self.drawn = False

    def update(self, data: dict[str, Any]) -> None:
        progress = float(data.get("progress", 0.0))
        width = 24
        filled = round(progress * width)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {progress:6.1%}  step {data.get('step')}  "
            f"d_loss {data.get('d_loss', 0):.4f}  g_loss {data.get('g_loss', 0):.4f}  "
            f"d_acc {data.get('d_accuracy', 0):.3f}  w1_a {data.get('w1_a', 0):.4f}  "
            f"in_band {data.get('in_band', 0):.3f}"
        )
        if self.tty:
            print(f"\r{line}", end="", file=self.out, flush=True)
            self.drawn = True
            return
        decile = int(progress * 10)
        if decile != self.last_decile:
            self.last_decile = decile
            print(line, file=self.out, flush=True)

    def done(self) -> None:
        """Ends the in-place line, once, so later messages start on a fresh line."""
        if self.tty and self.drawn:
            print(file=self.out)
        self.drawn = False


def _follow(api: Client, job: Job, timeout: float | None, err: TextIO) -> Job:
    """Shows progress from the event stream until the job ends, then returns it."""
    bar = Progress(err)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for event in api.iter_events(job.id, timeout=timeout):
            if event.type == "metrics":
                bar.update(event.data)
            elif event.type == "state":
                bar.done()  # ends the bar's line, if one is on screen
                print(f"{job.id}: {event.data.get('state')}", file=err)
                if event.data.get("state") in FINAL_STATES:
                    break
    except (TimeoutError, UnavailableError):
        pass  # wait() below falls back to polling, and owns the timeout's message
    finally:
        bar.done()
    if deadline is None:
        return api.wait(job.id, raise_on_failure=False)
    try:
        remaining = max(0.01, deadline - time.monotonic())
        return api.wait(job.id, timeout=remaining, raise_on_failure=False)
    except TimeoutError:
        state = api.get_job(job.id).state
        raise TimeoutError(f"job {job.id} still {state} after {timeout}s") from None


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare word such as non_saturating


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes key=value, got {pair!r}")
        config[key] = _value(raw)
    return config


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside brackets and quotes, so betas=[0.5,0.9],[0,0.9] is two
    values."""
    items, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if quoted:
            if ch == '"' and text[i - 1] != "\\":
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _parse_vary(specs: list[str]) -> dict[str, list[Any]]:
    """``--vary KEY=SPEC``: SPEC is comma-separated values (each JSON, else a bare word, as
    for --set) or an inclusive integer range a..b."""
    vary: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        where = f"--vary {spec!r}"
        if not sep or not key:
            raise UsageError(f"{where}: takes KEY=VALUES, e.g. lr_g=1e-4,2e-4 or seed=0..15")
        if key in vary:
            raise UsageError(f"{where}: {key} is varied twice; give all its values in one --vary")
        values: list[Any] = []
        for item in _split_top_level(raw):
            text = item.strip()
            if not text:
                raise UsageError(f"{where}: an empty value (values are separated by commas)")
            if (match := _RANGE.fullmatch(text)) is not None:
                lo, hi = int(match[1]), int(match[2])
                if lo > hi:
                    raise UsageError(f"{where}: the range {text} is empty (a..b needs a <= b)")
                if hi - lo + 1 > MAX_RANGE:
                    raise UsageError(f"{where}: the range {text} has over {MAX_RANGE} values")
                values.extend(range(lo, hi + 1))
            elif ".." in text and not text.startswith('"'):
                # No engine value looks like this: it is a range gone wrong (0..x, 1...3).
                raise UsageError(f"{where}: a range is two integers a..b (inclusive), got {text!r}")
            else:
                values.append(_value(text))
        vary[key] = values
    return vary


def _read_members(source: str) -> list[dict[str, Any]]:
    """``--members FILE.json`` (``-`` reads stdin): a JSON list of {field: value} objects."""
    where = f"--members {source}"
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    try:
        members = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not JSON: {exc}") from None
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise UsageError(f'{where}: must be a JSON list of objects, e.g. [{{"seed": 1}}]')
    if not members:
        raise UsageError(f"{where}: lists no members")
    return members


# ---------------------------------------------------------------- commands
def cmd_serve(args: argparse.Namespace, _: Client | None, out: TextIO, err: TextIO) -> int:
    try:
        from service.__main__ import main as serve  # the server extra
    except ImportError:
        print("error: the server is not installed here: pip install 'curvegan[server]'", file=err)
        return USAGE
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"CURVEGAN_{name.upper()}"] = str(value)
    serve()
    return OK


def cmd_worker(args: argparse.Namespace, _: Client | None, out: TextIO, err: TextIO) -> int:
    try:  # the server extra, with Celery
        from pydantic import ValidationError as SettingsError

        from service.runners.celery import make_celery, run_worker
        from service.settings import Settings
    except ImportError as exc:
        print(
            f"error: the worker is not installed here ({exc.name or exc} is missing): "
            "pip install 'curvegan[server]'",
            file=err,
        )
        return USAGE
    # Checked here, before run_worker imports torch (seconds) and hands over to Celery: a
    # missing broker URL or a bad CURVEGAN_* value is a usage error with a one-line message.
    try:
        make_celery(Settings()).close()
    except SettingsError as exc:
        for e in exc.errors():
            field = "CURVEGAN_" + "_".join(str(part) for part in e["loc"]).upper()
            print(f"error: {field}: {e['msg']}", file=err)
        return USAGE
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return USAGE
    run_worker(args.node_name, args.concurrency, args.loglevel)
    return OK


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_train(args: argparse.Namespace, api: Client, out: TextIO, err: TextIO) -> int:
    config = _parse_sets(args.set or [])
    for name in ("steps", "seed"):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    job = api.create_job(
        config or None, name=args.name, resume_from=args.resume_from, preset=args.preset
    )
    print(job.id, file=out, flush=True)
    if not args.wait:
        return OK
    job = _follow(api, job, args.timeout, err)
    summary = _job_row(job)
    print(
        f"{job.id} {job.state} at step {job.step}: d_score {_cell(summary['d_score'])}  "
        f"w1_a {_cell(summary['w1_a'])}  in_band {_cell(summary['in_band'])}  "
        f"checkpoint {job.latest_checkpoint or '-'}",
        file=err,
    )
    if job.state == "failed":
        print(f"error: {job.error}", file=err)
        return FAILED
    return OK


def cmd_jobs(args: argparse.Namespace, api: Client, out: TextIO, err: TextIO) -> int:
    if args.action == "list":
        if args.sweep is not None:
            api.get_sweep(args.sweep)  # an unknown sweep is "not found", not an empty list
        page = api.list_jobs(args.state, args.limit, args.offset, sweep_id=args.sweep)
        if args.json:
            _dump(page, out)
        else:
            _table(
                [_job_row(j) for j in page.items],
                ["id", "name", "state", "step", "d_score", "w1_a", "in_band", "created"],
                out,
            )
            print(f"{len(page.items)} of {page.total}", file=err)
        return OK
    if args.action == "show":
        _dump(api.get_job(args.id), out)
    elif args.action == "cancel":
        job = api.cancel_job(args.id)
        print(f"{job.id}: cancel requested ({job.state})", file=err)
    elif args.action == "delete":
        api.delete_job(args.id)
        print(f"{args.id}: deleted", file=err)
    elif args.action == "wait":
        job = _follow(api, api.get_job(args.id), args.timeout, err)
        _dump(job, out)
        return FAILED if job.state == "failed" else OK
    elif args.action == "metrics":
        rows = [r.model_dump() for r in api.job_metrics(args.id)]
        _table(
            rows,
            ["step", "d_loss", "g_loss", "d_accuracy", "d_score", "in_band", "resid", "w1_a"],
            out,
        )
    return OK


def cmd_checkpoints(args: argparse.Namespace, api: Client, out: TextIO, err: TextIO) -> int:
    if args.action == "list":
        if args.job is not None:
            api.get_job(args.job)  # an unknown job is "not found", not an empty list
        page = api.list_checkpoints(args.job, args.limit, args.offset)
        if args.json:
            _dump(page, out)
        else:
            rows = [
                {
                    "id": c.id,
                    "job_id": c.job_id,
                    "step": c.step,
                    "source": c.source,
                    "w1_a": c.quality.w1_a if c.quality else None,
                    "size": c.size_bytes,
                    "created": c.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                }
                for c in page.items
            ]
            _table(rows, ["id", "job_id", "step", "source", "w1_a", "size", "created"], out)
            print(f"{len(page.items)} of {page.total}", file=err)
    elif args.action == "show":
        _dump(api.get_checkpoint(args.id), out)
    elif args.action == "download":
        target = Path(args.output or f"{args.id}.safetensors")
        api.download_checkpoint(args.id, target)
        print(target, file=out)
    elif args.action == "upload":
        try:
            ckpt = api.upload_checkpoint(Path(args.file))
        except ValidationError as exc:
            # the server read the file and refused it (422): a refused request, not a usage error
            print(f"error: {exc.message}", file=err)
            return FAILED
        print(ckpt.id, file=out)
    elif args.action == "delete":
        api.delete_checkpoint(args.id)
        print(f"{args.id}: deleted", file=err)
    return OK


def cmd_plot(args: argparse.Namespace, api: Client, out: TextIO, err: TextIO) -> int:
    fmt = figure_format(args.output)
    kw: dict[str, Any] = dict(n=args.n, seed=args.seed, width=args.width, height=args.height)
    # Ids say what they name: job_<hex> for jobs, ck_<hex> for checkpoints.
    if args.id.startswith("job_"):
        image = api.job_figure(args.id, fmt, **kw)
    elif args.id.startswith("ck_"):
        image = api.checkpoint_figure(args.id, fmt, **kw)
    else:
        raise UsageError(
            f"ID must be a job id (job_...) or a checkpoint id (ck_...), got {args.id!r}"
        )
    Path(args.output).write_bytes(image)
    print(args.output, file=out)
    return OK


def cmd_sample(args: argparse.Namespace, api: Client, out: TextIO, err: TextIO) -> int:
    if (args.checkpoint is None) == (args.job is None):
        raise UsageError("give a CHECKPOINT id or --job JOB_ID (one of them)")
    if args.format == "npy" and not args.output:
        raise UsageError("--format npy writes a file: add -o FILE.npy")
    if args.job:
        samples = api.sample_job(args.job, args.n, seed=args.seed)
    else:
        samples = api.sample(args.checkpoint, args.n, seed=args.seed)
    curves = samples.curves.tolist() if hasattr(samples.curves, "tolist") else samples.curves
    if args.format == "npy":
        try:
            import numpy as np
        except ImportError:
            raise UsageError("--format npy needs numpy installed") from None
        with open(args.output, "wb") as fh:  # np.save(name) would append .npy to the name
            np.save(fh, np.asarray(curves, dtype=np.float32), allow_pickle=False)
        print(args.output, file=out)
        return OK
    stream = open(args.output, "w", newline="") if args.output else out  # noqa: SIM115
    try:
        if args.format == "json":
            json.dump(
                {
                    "checkpoint_id": samples.checkpoint_id,
                    "seed": samples.seed,
                    "x": samples.x,
                    "curves": curves,
                },
                stream,
            )
            stream.write("\n")
        else:
            writer = csv.writer(stream)
            # The header is the x grid, a column per x (exact float32 values): each row is
            # one curve's y at those x.
            writer.writerow([repr(float(v)) for v in samples.x])
            writer.writerows(curves)
    finally:
        if stream is not out:
            stream.close()
    if samples.seed is not None:
        print(f"seed {samples.seed}", file=err)
    return OK


# ---------------------------------------------------------------- sweeps
def _value_cell(value: Any) -> str:
    # JSON for lists and booleans: what --set/--vary take back (true, [0.5,0.9]).
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return _cell(value)
    return json.dumps(value, separators=(",", ":"))


def _best_text(sweep: SweepSummary) -> str:
    best = getattr(sweep, "best", None)
    if best is None:
        return f"best {sweep.best_by}: none yet"
    return f"best: member {best.member_index} ({best.job_id}) {sweep.best_by} {best.value:.4g}"


def _sweep_summary(sweep: Sweep, err: TextIO) -> None:
    c = sweep.counts
    states = ", ".join(
        f"{getattr(c, s)} {s}"
        for s in ("succeeded", "failed", "cancelled", "running", "queued")
        if getattr(c, s)
    )
    name = f" ({sweep.name})" if sweep.name else ""
    print(
        f"{sweep.id}{name} {sweep.state}: {sweep.member_count} members ({states}); "
        f"{_best_text(sweep)}",
        file=err,
    )


def _leaderboard(sweep: Sweep, out: TextIO) -> None:
    """One row per member, best first by the sweep's best_by; the varied fields as columns."""
    fields = sorted({name for m in sweep.members for name in m.values})
    rows = [
        {
            "member": m.member_index,
            **{name: _value_cell(m.values[name]) if name in m.values else None for name in fields},
            "state": m.state,
            **{metric: m.metric(metric) for metric in LEADERBOARD_METRICS},
            "job_id": m.job_id,
        }
        for m in sweep.ranked()
    ]
    _table(rows, ["member", *fields, "state", *LEADERBOARD_METRICS, "job_id"], out)


class SweepProgress:
    """A live line: members done of all, running, failed, best so far. Redrawn in place on a
    terminal; elsewhere a line whenever a member ends (and the first)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last_key: tuple[int, int] | None = None
        self.width = 0  # of the line on screen, to blank a longer one it replaces

    def update(self, sweep: Sweep) -> None:
        c, width = sweep.counts, 24
        filled = round(sweep.progress * width)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {sweep.progress:6.1%}  "
            f"{c.done}/{sweep.member_count} done  {c.running} running"
            + (f"  {c.failed} failed" if c.failed else "")
            + f"  {_best_text(sweep)}"
        )
        if self.tty:
            print(f"\r{line.ljust(self.width)}", end="", file=self.out, flush=True)
            self.width = len(line)
            return
        key = (c.done, c.failed)
        if key != self.last_key:
            self.last_key = key
            print(line, file=self.out, flush=True)

    def done(self) -> None:
        """Ends the in-place line, once, so later messages start on a fresh line."""
        if self.tty and self.width:
            print(file=self.out)
        self.width = 0


def _follow_sweep(api: Client, sweep_id: str, timeout: float | None, err: TextIO) -> Sweep:
    """Shows live progress from the sweep's event stream until it ends, then returns it."""
    bar = SweepProgress(err)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for event in api.iter_sweep_events(sweep_id, timeout=timeout):
            if event.type != "sweep":
                break  # "deleted": the get below says so
            sweep = Sweep.model_validate(event.data)
            bar.update(sweep)
            if sweep.is_final:
                return sweep
    except (TimeoutError, UnavailableError):
        pass  # wait_sweep() below falls back to polling, and owns the timeout's message
    finally:
        bar.done()
    if deadline is None:
        return api.wait_sweep(sweep_id)
    try:
        return api.wait_sweep(sweep_id, timeout=max(0.01, deadline - time.monotonic()))
    except TimeoutError:
        state = api.get_sweep(sweep_id).state
        raise TimeoutError(f"sweep {sweep_id} still {state} after {timeout}s") from None


def _sweep_result(sweep: Sweep, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Prints a final sweep (leaderboard, or JSON); exit 1 if a member failed."""
    if as_json:
        _dump(sweep, out)
    else:
        _leaderboard(sweep, out)
        _sweep_summary(sweep, err)
    failed = [m for m in sweep.members if m.state == "failed"]
    if failed:
        which = ", ".join(f"member {m.member_index} ({m.job_id})" for m in failed)
        print(
            f"error: {len(failed)} of {sweep.member_count} members failed: {which}; "
            "`curvegan jobs show JOB_ID` has the error",
            file=err,
        )
        return FAILED
    return OK


def cmd_sweep(args: argparse.Namespace, api: Client, out: TextIO, err: TextIO) -> int:
    if args.action == "create":
        config = _parse_sets(args.set or [])
        vary = _parse_vary(args.vary) if args.vary else None
        members = _read_members(args.members) if args.members is not None else None
        sweep = api.create_sweep(
            config or None,
            vary=vary,
            members=members,
            preset=args.preset,
            name=args.name,
            best_by=args.best_by,
        )
        print(sweep.id, file=out, flush=True)
        print(f"{sweep.id}: {sweep.member_count} members queued", file=err, flush=True)
        if not args.wait:
            return OK
        return _sweep_result(_follow_sweep(api, sweep.id, args.timeout, err), False, out, err)
    if args.action == "list":
        page = api.list_sweeps(args.limit, args.offset)
        if args.json:
            _dump(page, out)
            return OK
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "state": s.state,
                "members": s.member_count,
                "done": f"{s.counts.done}/{s.member_count}",
                "failed": s.counts.failed,
                "best_by": s.best_by,
                "created": s.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            }
            for s in page.items
        ]
        columns = ["id", "name", "state", "members", "done", "failed", "best_by", "created"]
        _table(rows, columns, out)
        print(f"{len(page.items)} of {page.total}", file=err)
        return OK
    if args.action == "show":
        sweep = api.get_sweep(args.id)
        if args.json:
            _dump(sweep, out)
        else:
            _leaderboard(sweep, out)
            _sweep_summary(sweep, err)
    elif args.action == "wait":
        return _sweep_result(_follow_sweep(api, args.id, args.timeout, err), args.json, out, err)
    elif args.action == "cancel":
        sweep = api.cancel_sweep(args.id)
        left = sweep.member_count - sweep.counts.done
        print(f"{sweep.id}: cancel requested ({left} members not final yet)", file=err)
    elif args.action == "delete":
        api.delete_sweep(args.id)
        print(f"{args.id}: deleted (with its member jobs; checkpoints stay)", file=err)
    return OK


# ---------------------------------------------------------------- parser
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
        choices=["queued", "running", "succeeded", "failed", "cancelled"],
        help="only jobs in this state",
    )
    jl.add_argument("--sweep", metavar="SWEEP_ID", help="only this sweep's member jobs")
    jl.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    jl.add_argument("--offset", type=int, default=0, help="skip this many first (default 0)")
    jl.add_argument("--json", action="store_true", help="print the page as JSON")
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
            # SUPPRESS: without it this default (None) overwrites the global --timeout
            p.add_argument(
                "--timeout",
                type=float,
                default=argparse.SUPPRESS,
                help="give up after this many seconds",
            )
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
    sl.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    sl.add_argument("--offset", type=int, default=0, help="skip this many first (default 0)")
    sl.add_argument("--json", action="store_true", help="print the page as JSON")
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
            # SUPPRESS: without it this default (None) overwrites the global --timeout
            p.add_argument(
                "--timeout",
                type=float,
                default=argparse.SUPPRESS,
                help="give up after this many seconds (exit 1)",
            )
    sw.set_defaults(func=cmd_sweep)

    ck = sub.add_parser("checkpoints", help="list, show, download, upload or delete checkpoints")
    ck_sub = ck.add_subparsers(dest="action", required=True, metavar="ACTION")
    cl = ck_sub.add_parser("list", help="checkpoints, newest first")
    cl.add_argument("--job", help="only this job's")
    cl.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    cl.add_argument("--offset", type=int, default=0, help="skip this many first (default 0)")
    cl.add_argument("--json", action="store_true", help="print the page as JSON")
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
    except JobFailedError as exc:
        print(f"error: {exc}", file=err)
        return FAILED
    except TimeoutError as exc:
        print(f"error: {exc}", file=err)
        return FAILED
    except ApiError as exc:
        print(f"error: {exc.message}", file=err)
        return FAILED
    except CurveganError as exc:
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
