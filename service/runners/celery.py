"""Cluster mode on Celery: the API publishes one task per job; `curvegan worker` nodes on any
number of machines run them against the same store and checkpoint storage.

The store stays the source of truth; a message only says "job X is ready". A duplicate or
redelivered message is harmless (its claim fails), and a lost one is recovered: jobs whose
lease lapsed, and queued jobs nobody took while the broker queue stood empty, are published
again. Long tasks meet the usual traps, each handled here or in the deployment:
- late acks (acks_late with prefetch 1) keep a node from hoarding jobs it cannot start yet;
  a worker process that dies mid-task has its message acked (not redelivered in a loop):
  the job comes back through its lease instead;
- RabbitMQ closes a channel whose message stays unacked past ``consumer_timeout`` (30 min by
  default): raise it above the longest job (the cluster compose file does). If it fires
  anyway, the job keeps training and the redelivered message finds it claimed;
- Redis redelivers unacked messages after ``visibility_timeout``: set to 12 hours here, and
  a redelivery is again only a failed claim;
- a lost broker connection must not cancel the running job: it keeps training and writing
  to the store; the task's ack is then lost and the redelivery is harmless.
No result backend: results are in the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from celery import Celery, signals

from ..settings import Settings
from ..store import Store
from .base import SupervisedRunner, recover_lapsed

log = logging.getLogger("curvegan.runner.celery")

TASK = "curvegan.run_job"
# How often the API's runner loop looks for lapsed leases and lost messages.
TICK_S = 1.0


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ValueError("CURVEGAN_EXECUTOR=celery needs CURVEGAN_BROKER_URL (amqp:// or redis://)")
    app = Celery("curvegan", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        # A POST /v1/jobs publishes inline: an unreachable broker must cost it seconds at most
        # (the job is queued in the store regardless, and published again later).
        broker_connection_timeout=2.0,
        broker_transport_options={"visibility_timeout": 12 * 3600},
        worker_hijack_root_logger=False,
    )
    return app


class CeleryRunner(SupervisedRunner):
    """The API side: publishes jobs and owns recovery (lapsed leases, lost messages)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.app = make_celery(settings)

    @property
    def busy_workers(self) -> int:
        return 0  # the workers are other processes, on other machines

    async def start(self) -> None:
        self._start_loop(self._loop(), "curvegan-celery-runner")

    async def stop(self) -> None:
        await self._stop_loop()
        self.app.close()

    def submit(self, job_id: str) -> None:
        publish(self.app, self.store, [job_id])

    async def _loop(self) -> None:
        while True:
            try:
                requeued = await recover_lapsed(self.store, self.settings.max_worker_losses)
                if requeued:
                    await asyncio.to_thread(publish, self.app, self.store, requeued)
                await asyncio.to_thread(self._republish_lost)
            except Exception:  # the loop must outlive any one bad tick (broker or store down)
                log.exception("celery runner tick failed")
            await asyncio.sleep(TICK_S)

    def _republish_lost(self) -> None:
        stale = self.store.queued_unpublished_since(time.time() - self.settings.republish_seconds)
        # Queued jobs may wait in the broker for hours while every worker is busy; only when
        # the broker holds no ready message at all were theirs lost (or never sent).
        if stale and ready_messages(self.app, self.settings.queue) == 0:
            log.warning("publishing %d queued job(s) again: their messages were lost", len(stale))
            publish(self.app, self.store, stale)


def publish(app: Celery, store: Store, job_ids: list[str]) -> None:
    """Announces jobs on the broker. A failure is logged, not raised: the job is safely queued
    in the store and the runner's loop publishes it again."""
    try:
        for job_id in job_ids:
            app.send_task(
                TASK,
                args=[job_id],
                queue=app.conf.task_default_queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
            )
    except Exception as exc:
        log.warning("could not publish %s: %s (it will be published again)", job_ids, exc)
        return
    store.mark_published(job_ids)


def ready_messages(app: Celery, queue: str) -> int:
    with app.connection_for_read() as conn:
        try:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except Exception:  # the queue does not exist yet: nothing waits in it
            return 0


# ---------------------------------------------------------------------- the worker node
_node: dict[str, Any] = {}


def worker_app(settings: Settings | None = None) -> Celery:
    """The app `curvegan worker` runs: the task, and the per-process store and storage."""
    settings = settings or Settings()
    app = make_celery(settings)
    _node["settings"] = settings

    @app.task(name=TASK, bind=True, ignore_result=True)
    def run_job(task: Any, job_id: str) -> str:
        return _run_job(task.app, job_id, task.request.hostname or "celery")

    return app


@signals.worker_process_init.connect
def _process_init(**_: Any) -> None:
    # Each forked pool process opens its own connections (never share sockets across fork).
    from .worker import start_worker

    settings: Settings | None = _node.get("settings")
    if settings is None:  # a Celery worker of some other app
        return
    _node["parent"] = os.getppid()
    _node["ctx"] = start_worker(settings, processes=_node["concurrency"])


@signals.worker_shutting_down.connect
def _shutting_down(sender: Any = None, **_: Any) -> None:
    # A warm shutdown waits for running tasks: ask them, through the store, to save and go
    # back to the queue, so that `docker stop` or a deploy does not wait for a long job.
    settings: Settings | None = _node.get("settings")
    if settings is None:
        return
    store = Store(settings.db_url)
    try:
        n = store.request_suspend_prefix(f"celery:{sender}:")
        if n:
            log.warning("asked %d running job(s) on %s to save and re-queue", n, sender)
    except Exception:
        log.exception("could not ask the running jobs to suspend")
    finally:
        store.dispose()


def _run_job(app: Celery, job_id: str, node: str) -> str:
    from .claims import claim_members
    from .run import run_claimed

    ctx = _node["ctx"]
    worker_id = f"celery:{node}:{os.getpid()}"
    # A sweep's member brings its siblings of the same shape: this process's share when the
    # node's processes split them. Their own messages then find them claimed.
    claimed = claim_members(ctx, worker_id, job_id)
    if not claimed:  # a duplicate, a redelivery, or a job cancelled meanwhile
        return "not claimed"

    def tick() -> None:
        if os.getppid() != _node["parent"]:
            os._exit(0)  # the node's main process is gone: the lease brings the job back

    requeued = run_claimed(ctx, claimed, tick=tick)
    if requeued:
        publish(app, ctx.store, requeued)
    return f"{len(claimed)} job(s) trained"


def run_worker(node_name: str | None, concurrency: int | None, loglevel: str = "info") -> None:
    """`curvegan worker`: Celery's prefork worker with the project's app; torch is imported
    here, before the pool forks, so every process starts warm."""
    import gan_engine  # noqa: F401 - warm: imported once, inherited by every forked process

    from .worker import check_device

    settings = Settings()
    check_device(settings.device)  # before the pool forks: one clear error, not one a process
    app = worker_app(settings)
    n = concurrency or settings.worker_concurrency or os.cpu_count() or 1
    _node["concurrency"] = n
    argv = [
        "worker",
        f"--concurrency={n}",
        "--pool=prefork",
        "--optimization=fair",
        f"--queues={settings.queue}",
        f"--loglevel={loglevel}",
        # Gossip and mingle talk to other nodes over broadcast queues: nothing here needs them
        # and mingle alone adds seconds to every start.
        "--without-gossip",
        "--without-mingle",
    ]
    if node_name:
        argv.append(f"--hostname={node_name}")
    app.worker_main(argv)
