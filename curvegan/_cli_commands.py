"""What each ``curvegan`` command does, given its parsed arguments and a Client; each returns
its exit code. The values of --set, --vary and --members are read here."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from . import _cli_output as show
from ._calls import figure_format
from .client import Client
from .errors import UnavailableError, UsageError, ValidationError
from .models import FINAL_STATES, Job, Sweep

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
# --vary seed=0..15: an inclusive integer range. Bounded so a typo (0..10000000) is a usage
# error here rather than a huge list built, sent and refused by the server's member limit.
_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)")
MAX_RANGE = 10_000
T = TypeVar("T")


# ---------------------------------------------------------------- values of options
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


# ---------------------------------------------------------------- following
def _follow(api: Client, job: Job, timeout: float | None, err: TextIO) -> Job:
    """Shows progress from the event stream until the job ends, then returns it."""
    bar = show.Progress(err)
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
    return _wait_rest(
        lambda left: api.wait(job.id, left, raise_on_failure=False),
        lambda: f"job {job.id} still {api.get_job(job.id).state} after {timeout}s",
        deadline,
    )


def _follow_sweep(api: Client, sweep_id: str, timeout: float | None, err: TextIO) -> Sweep:
    """Shows live progress from the sweep's event stream until it ends, then returns it."""
    bar = show.SweepProgress(err)
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
    return _wait_rest(
        lambda left: api.wait_sweep(sweep_id, left),
        lambda: f"sweep {sweep_id} still {api.get_sweep(sweep_id).state} after {timeout}s",
        deadline,
    )


def _wait_rest(
    wait: Callable[[float | None], T], late: Callable[[], str], deadline: float | None
) -> T:
    """After the live view: wait() (it polls if the stream failed) for the time left; a
    timeout says what is still going (``late``)."""
    try:
        return wait(None if deadline is None else max(0.01, deadline - time.monotonic()))
    except TimeoutError:
        raise TimeoutError(late()) from None


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
    summary = show.job_row(job)
    print(
        f"{job.id} {job.state} at step {job.step}: d_score {show.cell(summary['d_score'])}  "
        f"w1_a {show.cell(summary['w1_a'])}  in_band {show.cell(summary['in_band'])}  "
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
            show.dump(page, out)
        else:
            show.table(
                [show.job_row(j) for j in page.items],
                ["id", "name", "state", "step", "d_score", "w1_a", "in_band", "created"],
                out,
            )
            print(f"{len(page.items)} of {page.total}", file=err)
        return OK
    if args.action == "show":
        show.dump(api.get_job(args.id), out)
    elif args.action == "cancel":
        job = api.cancel_job(args.id)
        print(f"{job.id}: cancel requested ({job.state})", file=err)
    elif args.action == "delete":
        api.delete_job(args.id)
        print(f"{args.id}: deleted", file=err)
    elif args.action == "wait":
        job = _follow(api, api.get_job(args.id), args.timeout, err)
        show.dump(job, out)
        return FAILED if job.state == "failed" else OK
    elif args.action == "metrics":
        rows = [r.model_dump() for r in api.job_metrics(args.id)]
        show.table(
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
            show.dump(page, out)
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
            show.table(rows, ["id", "job_id", "step", "source", "w1_a", "size", "created"], out)
            print(f"{len(page.items)} of {page.total}", file=err)
    elif args.action == "show":
        show.dump(api.get_checkpoint(args.id), out)
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


def _sweep_result(sweep: Sweep, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Prints a final sweep (leaderboard, or JSON); exit 1 if a member failed."""
    if as_json:
        show.dump(sweep, out)
    else:
        show.leaderboard(sweep, out)
        show.sweep_summary(sweep, err)
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
            show.dump(page, out)
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
        show.table(rows, columns, out)
        print(f"{len(page.items)} of {page.total}", file=err)
        return OK
    if args.action == "show":
        sweep = api.get_sweep(args.id)
        if args.json:
            show.dump(sweep, out)
        else:
            show.leaderboard(sweep, out)
            show.sweep_summary(sweep, err)
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
