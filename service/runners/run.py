"""The one run path: claimed jobs trained as one population, whichever runner claimed them (a
warm local process or a Celery worker on another machine). A single job is a population of
one; a sweep's members of one shape are a population of many. Each member keeps its own
lease, requests, metrics, checkpoints and final state: one member cancelled, fenced off or
diverged leaves the population while the others train on.

Everything goes through the store: requests (cancel, save now, suspend) arrive with the lease
renewals, and every write is fenced by its member's lease, so a worker that lost a job stops
writing for it at its next write."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.exc import DBAPIError

from gan_engine import (
    Checkpoint,
    LogRecord,
    Population,
    RunResult,
    TrainConfig,
    TrainingDiverged,
    checkpoint_from_bytes,
)

from ..domain import JobState, Lease
from ..storage.diskfull import without_paths
from ..store import LeaseLost
from ..store.bounds import CURVE_ROWS
from .claims import Claimed, resumes
from .saves import save_or_skip, tidy
from .worker import WorkerContext

log = logging.getLogger("curvegan.worker")

# A final checkpoint that finds no room is retried after 1 s, then 2, 4... at most 60 s apart:
# soon after space is freed, without hammering a full disk.
FINAL_SAVE_FIRST_WAIT_S, FINAL_SAVE_MAX_WAIT_S = 1.0, 60.0


def run_claimed(
    ctx: WorkerContext, claimed: list[Claimed], tick: Callable[[], None] | None = None
) -> list[str]:
    """Trains the claimed jobs together until each is final or back in the queue; returns the
    jobs it put back in the queue (suspended), for a runner that must announce them. ``tick``
    is called between steps (the local pool's heartbeat)."""
    run = _Run(ctx, claimed, tick)
    try:
        run.train()
    except DBAPIError as exc:
        # The store is out of reach: nothing can be recorded, not even a failure. The jobs'
        # leases lapse and they resume from their latest checkpoints once the store is back.
        log.error("job(s) %s: the store failed (%s); leaving them to their leases", run.ids, exc)
    return run.requeued


class _Run:
    """One population's run: the engine's hooks, and each member's lease and requests. Members
    are indexed as in the population; a member leaves ``leases`` when it ends or is lost."""

    def __init__(
        self, ctx: WorkerContext, claimed: list[Claimed], tick: Callable[[], None] | None
    ) -> None:
        self.ctx, self.store, self.tick = ctx, ctx.store, tick
        self.jobs = [job for _, job in claimed]
        self.ids = [job.id for job in self.jobs]
        self.leases: dict[int, Lease] = {i: lease for i, (lease, _) in enumerate(claimed)}
        self.pop: Population | None = None
        # The claim reset each job's save counter: a request made since is already pending.
        self.saves_seen = dict.fromkeys(self.leases, 0)
        self.save_pending: set[int] = set()
        self.unsaved: set[int] = set()  # members whose last checkpoint found the disk full
        self.suspend = False
        self.last_renewal = 0.0  # the first should_stop renews at once
        self.requeued: list[str] = []
        # Metrics are trimmed (store/bounds.py) every ``trim_every`` logs, the first at once
        # (a resumed job's history): at most that many rows come between two trims, so a
        # trim to ``max_metric_rows - trim_every`` keeps a job within max_metric_rows.
        self.trim_every = max(1, min(CURVE_ROWS, ctx.max_metric_rows // 4))
        self.logs_to_trim = 0

    def train(self) -> None:
        try:
            self.pop = pop = self._population()
            # An earlier holder may have logged steps past the checkpoint it starts from.
            for i, lease in list(self.leases.items()):
                self._guarded(i, lambda lease=lease: self.store.rewind(lease, pop.step_count))
            result: RunResult | None = pop.run(
                on_log=self._on_log,
                should_stop=self._should_stop,
                should_checkpoint=lambda: bool(self.save_pending),
                on_checkpoint=self._on_checkpoint,
            )
        except TrainingDiverged:
            result = None  # every member diverged: each gets its own error below
        except DBAPIError:
            raise
        except Exception as exc:  # a job's failure must be recorded, whatever it was
            log.exception("job(s) %s failed", self.ids)
            for i in list(self.leases):
                self._finish(i, JobState.FAILED, without_paths(exc))
            return
        self._end(result)

    def _population(self) -> Population:
        """The members' configs, each built once, at the step their checkpoints were taken
        (0 for fresh members)."""
        configs = [TrainConfig.from_dict(job.config) for job in self.jobs]
        starts = [resumes(job) for job in self.jobs]
        device = self.ctx.device
        if not any(starts):
            return Population(configs, device=device)
        if not all(starts):
            raise RuntimeError("the members of one population must all resume, or all start")
        # A job may train longer or log differently than the run that saved its checkpoint.
        return Population.from_checkpoints(
            [
                replace(self._read(start), config=config)
                for start, config in zip(starts, configs, strict=True)
                if start is not None
            ],
            device=device,
        )

    def _read(self, checkpoint_id: str) -> Checkpoint:
        try:
            data = self.ctx.storage.read(checkpoint_id)
        except FileNotFoundError:
            raise RuntimeError(
                f"the file of checkpoint {checkpoint_id} to resume from is missing"
            ) from None
        return checkpoint_from_bytes(data, odd_metrics="drop")

    # ------------------------------------------------------------------ members' writes
    def _guarded(self, i: int, write: Callable[[], object]) -> None:
        """A member's own write; losing its lease ends that member only."""
        try:
            write()
        except LeaseLost:
            self._lost(i)

    def _lost(self, i: int) -> None:
        lease = self.leases.pop(i, None)
        if lease is not None:
            log.warning(
                "job %s: lease %d lost; another worker owns it now", lease.job_id, lease.attempt
            )
        if self.pop is not None:
            self.pop.drop(i, "lease lost")

    def _finish(self, i: int, state: JobState, error: str | None = None) -> None:
        lease = self.leases.pop(i, None)
        if lease is not None:
            self._guarded(i, lambda: self.store.finish(lease, state, error))

    def _save(self, i: int, ckpt: Checkpoint) -> None:
        lease = self.leases.get(i)
        if lease is None:
            return
        try:
            saved = save_or_skip(self.ctx, lease, self.jobs[i].id, ckpt)
        except LeaseLost:
            self._lost(i)
            return
        if saved:
            self.unsaved.discard(i)
        else:
            self.unsaved.add(i)

    # ------------------------------------------------------------------ the engine's hooks
    def _should_stop(self) -> bool:
        """Renews every member's lease (one statement for all) about once a second and acts
        on what it brings: a cancel ends that member now, a save request saves at the next
        step, a suspend stops the whole population."""
        if self.tick is not None:
            self.tick()
        now = time.monotonic()
        if now - self.last_renewal < self.ctx.renew_every_s:
            return self.suspend
        self.last_renewal = now
        renewed = self.store.renew_many(list(self.leases.values()), self.ctx.lease_s)
        for i, lease in list(self.leases.items()):
            requests = renewed.get(lease.job_id)
            if requests is None:
                self._lost(i)
            elif requests.cancel:
                self._cancel(i)
            else:
                self.suspend = self.suspend or requests.suspend
                if requests.save > self.saves_seen[i]:
                    self.saves_seen[i] = requests.save
                    self.save_pending.add(i)
        return self.suspend

    def _cancel(self, i: int) -> None:
        """The member's last record and checkpoint, then cancelled; the others train on."""
        assert self.pop is not None
        record, ckpt = self.pop.leave(i, "cancelled")
        if record is not None:
            self._on_log({i: record})
        if ckpt is None:  # its last record found it diverged: it fails instead
            self._fail_diverged()
            return
        self._save(i, ckpt)
        self._finish(i, JobState.CANCELLED)

    def _on_log(self, records: dict[int, LogRecord]) -> None:
        assert self.pop is not None
        pop = self.pop
        held = [(i, r) for i, r in records.items() if i in self.leases]
        lost = self.store.record_progress_many(
            [(self.leases[i], r.step, r.to_dict(), pop.preview(i)) for i, r in held]
        )
        for i, _ in held:
            if self.leases[i].job_id in lost:
                self._lost(i)
        self.logs_to_trim -= 1
        if self.logs_to_trim <= 0:
            self.logs_to_trim = self.trim_every
            keep = self.ctx.max_metric_rows - self.trim_every
            for i, lease in list(self.leases.items()):
                self._guarded(i, lambda lease=lease: self._trim(lease, keep))
        self._fail_diverged()

    def _trim(self, lease: Lease, max_rows: int) -> None:
        tidy(lease.job_id, lambda: self.store.trim_metrics(lease, max_rows))

    def _fail_diverged(self) -> None:
        assert self.pop is not None
        for i, why in list(self.pop.failed.items()):
            if i in self.leases and "diverged" in why:  # it fails now; the others train on
                self._finish(i, JobState.FAILED, why)

    def _on_checkpoint(self, ckpts: dict[int, Checkpoint]) -> None:
        self.save_pending.clear()
        for i, ckpt in ckpts.items():
            self._save(i, ckpt)

    def _end(self, result: RunResult | None) -> None:
        """Each member still held: succeeded when the run finished with its final weights
        saved (retried while there is no room for them, see ``_save_final``); else
        (stopped: suspended) back to the queue, or cancelled if a cancel arrived meanwhile."""
        self._fail_diverged()
        finished = result is not None and not result.stopped
        if finished:
            self._save_final()
        for i, lease in list(self.leases.items()):
            if finished and i not in self.unsaved:
                self._finish(i, JobState.SUCCEEDED)
                continue
            self.leases.pop(i)
            try:
                if self.store.release(lease) is JobState.QUEUED:
                    self.requeued.append(lease.job_id)
            except LeaseLost:
                pass

    def _save_final(self) -> None:
        """Members whose final checkpoint found no room (a full disk, CURVEGAN_MAX_DATA_BYTES):
        their weights stay in memory and the save is retried, waiting 1 s, then 2, 4... at
        most 60 s, with leases renewed and requests heard meanwhile (a cancel ends the member
        cancelled, a suspend stops the wait); past CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS they
        fail. Never back to the queue for this: it would train again only to meet the disk."""
        assert self.pop is not None
        pop = self.pop
        final = {i: pop.member_checkpoint(i) for i in self.unsaved if i in self.leases}
        deadline = time.monotonic() + self.ctx.final_save_timeout_s
        wait = FINAL_SAVE_FIRST_WAIT_S
        while waiting := [i for i in final if i in self.leases and i in self.unsaved]:
            left = deadline - time.monotonic()
            if left <= 0:
                for i in waiting:
                    self._finish(i, JobState.FAILED, self._no_room_error())
                return
            self._wait(min(wait, left))
            if self.suspend:
                return
            wait = min(2 * wait, FINAL_SAVE_MAX_WAIT_S)
            for i in waiting:
                self._save(i, final[i])

    def _no_room_error(self) -> str:
        return (
            "the disk was full (or the data at CURVEGAN_MAX_DATA_BYTES): the final checkpoint "
            f"could not be saved within {self.ctx.final_save_timeout_s:g} s "
            "(CURVEGAN_FINAL_SAVE_TIMEOUT_SECONDS)"
        )

    def _wait(self, seconds: float) -> None:
        """Sleeps ``seconds`` in short naps, renewing the leases as training does (a cancel
        ends its member here), until no member is held or a suspend arrives."""
        until = time.monotonic() + seconds
        while self.leases and not self._should_stop():
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))
