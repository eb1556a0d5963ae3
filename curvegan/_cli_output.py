"""How the command line shows results: tables, JSON, progress lines and leaderboards."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from .models import Job, Sweep, SweepSummary

LEADERBOARD_METRICS = ("w1_a", "in_band", "resid", "d_score")


def table(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=out)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def job_row(job: Job) -> dict[str, Any]:
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


def dump(model: Any, out: TextIO) -> None:
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


def value_cell(value: Any) -> str:
    # JSON for lists and booleans: what --set/--vary take back (true, [0.5,0.9]).
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return cell(value)
    return json.dumps(value, separators=(",", ":"))


def best_text(sweep: SweepSummary) -> str:
    best = getattr(sweep, "best", None)
    if best is None:
        return f"best {sweep.best_by}: none yet"
    return f"best: member {best.member_index} ({best.job_id}) {sweep.best_by} {best.value:.4g}"


def sweep_summary(sweep: Sweep, err: TextIO) -> None:
    c = sweep.counts
    states = ", ".join(
        f"{getattr(c, s)} {s}"
        for s in ("succeeded", "failed", "cancelled", "running", "queued")
        if getattr(c, s)
    )
    name = f" ({sweep.name})" if sweep.name else ""
    print(
        f"{sweep.id}{name} {sweep.state}: {sweep.member_count} members ({states}); "
        f"{best_text(sweep)}",
        file=err,
    )


def leaderboard(sweep: Sweep, out: TextIO) -> None:
    """One row per member, best first by the sweep's best_by; the varied fields as columns."""
    fields = sorted({name for m in sweep.members for name in m.values})
    rows = [
        {
            "member": m.member_index,
            **{name: value_cell(m.values[name]) if name in m.values else None for name in fields},
            "state": m.state,
            **{metric: m.metric(metric) for metric in LEADERBOARD_METRICS},
            "job_id": m.job_id,
        }
        for m in sweep.ranked()
    ]
    table(rows, ["member", *fields, "state", *LEADERBOARD_METRICS, "job_id"], out)


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
            + f"  {best_text(sweep)}"
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
