"""A sweep's split between workers is exact whatever the timing: 4 members on 2 workers train
as 2 + 2, never 3 + 1 or 2 + 1 + 1. Each worker has a store of its own (its own connections,
as separate processes have), on SQLite and on PostgreSQL; the claims are interleaved at every
statement one worker's claim executes, the other worker claiming right there."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from gan_engine import TrainConfig
from service.runners.claims import claim_members, part_of
from service.runners.worker import WorkerContext
from service.storage import LocalStorage
from service.store import Store
from service.store.tables import meta
from tests.services import fresh_postgres_database

CONFIG = TrainConfig(steps=40, seed=5, log_every=10, checkpoint_every=0)
# How long a worker's statement may take before the next worker's turn: one that waits for a
# lock held by a stopped worker goes on later instead. Any order is an interleaving the
# split must survive; nothing is asserted on time.
OTHER_STEP_S = 0.5


@pytest.fixture(scope="module")
def postgres_split_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_split_url"))


class Workers:
    """``n`` workers over one store, each with a store of its own, splitting sweeps between
    ``split`` of them, ``max_population`` at most at once."""

    def __init__(self, url: str, tmp_path: Path, n: int, split: int, max_population: int):
        self.stores = [Store(url) for _ in range(n)]
        self.stores[0].migrate()
        with self.stores[0]._write.begin() as conn:  # the module's PostgreSQL database
            for table in reversed(meta.sorted_tables):
                conn.execute(table.delete())
        storage = LocalStorage(tmp_path / "files")
        self.ctxs = [WorkerContext(s, storage, 60.0, split, max_population) for s in self.stores]
        # Each worker's populations: the member ids it claimed together, claim by claim.
        self.populations: list[list[list[str]]] = [[] for _ in range(n)]

    def sweep(self, sweep_id: str, members: int) -> list[str]:
        ids = [f"{sweep_id}-m{i}" for i in range(members)]
        configs = [CONFIG.replace(seed=i).to_dict() for i in range(members)]
        self.stores[0].create_sweep(
            sweep_id=sweep_id,
            name=None,
            config={},
            best_by="w1_a",
            members=list(zip(ids, configs, strict=True)),
            idempotency_key=None,
            request_hash=None,
        )
        return ids

    def claim(self, i: int) -> bool:
        claimed = claim_members(self.ctxs[i], f"w{i}")
        if claimed:
            self.populations[i].append([job.id for _, job in claimed])
        return bool(claimed)

    def lockstep(self, workers: list[int], head: int = 0) -> None:
        """The ``workers`` claim at once, each on a thread of its own stopped after every
        statement it executes: the first runs ``head`` statements, then they take one
        statement each in turn. A worker whose statement waits for another's lock is passed
        over after OTHER_STEP_S and goes on once that lock is let go."""
        events: queue.Queue[tuple[str, int]] = queue.Queue()
        go = {i: threading.Semaphore(0) for i in workers}

        def gate(i: int) -> Callable[..., None]:
            def after(*_: Any) -> None:
                events.put(("step", i))
                go[i].acquire()

            return after

        def run(i: int) -> None:
            go[i].acquire()
            try:
                self.claim(i)
            finally:
                events.put(("end", i))

        gates = {i: gate(i) for i in workers}
        for i in workers:
            event.listen(self.stores[i]._write, "after_cursor_execute", gates[i])
        threads = [threading.Thread(target=run, args=(i,)) for i in workers]
        for t in threads:
            t.start()
        turns = itertools.chain([workers[0]] * head, itertools.cycle(workers))
        stopped, live = set(workers), set(workers)
        try:
            while live:
                if stopped:  # the next in turn of those stopped goes one statement on
                    i = next(i for i in turns if i in stopped)
                    stopped.discard(i)
                    go[i].release()
                timeout = OTHER_STEP_S if stopped else None
                try:
                    kind, k = events.get(timeout=timeout)
                except queue.Empty:
                    continue  # ``i`` waits for a lock another stopped worker holds
                while True:
                    (stopped.add if kind == "step" else live.discard)(k)
                    try:
                        kind, k = events.get_nowait()
                    except queue.Empty:
                        break
        finally:
            for i in workers:
                event.remove(self.stores[i]._write, "after_cursor_execute", gates[i])
                go[i].release()
            for t in threads:
                t.join()

    def drain(self) -> None:
        """The workers claim in turn until the queue is empty (each then trains its claim)."""
        while any([self.claim(i) for i in range(len(self.stores))]):
            pass

    def sizes(self) -> list[int]:
        return sorted(len(p) for ps in self.populations for p in ps)

    def close(self) -> None:
        for s in self.stores:
            s.dispose()


@pytest.fixture
def workers(url: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Workers] = []

    def make(n: int = 2, split: int = 2, max_population: int = 16) -> Workers:
        made.append(Workers(url, tmp_path, n, split, max_population))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_four_members_on_two_workers_train_two_and_two_at_any_interleaving(workers: Any) -> None:
    pool = workers()
    for head in range(12):  # the first worker runs 0..11 statements ahead, then in turn
        pool.populations = [[], []]
        ids = pool.sweep(f"s{head}", 4)
        pool.lockstep([0, 1], head)
        pool.drain()
        assert pool.sizes() == [2, 2], (head, pool.populations)
        assert sorted(m for ps in pool.populations for p in ps for m in p) == ids


def test_a_worker_that_starts_late_finds_its_exact_share(workers: Any) -> None:
    pool = workers()
    pool.sweep("s", 4)
    assert pool.claim(0)
    assert pool.claim(0)  # the other worker has not started: this one trains both parts
    assert not pool.claim(1)
    assert pool.populations == [[["s-m0", "s-m1"], ["s-m2", "s-m3"]], []]


def test_a_members_own_message_takes_its_whole_part(workers: Any) -> None:
    """Celery: each member has its message, claimed by id; a message for a member of a part
    already taken finds nothing, and one for another part takes all of that part."""
    pool = workers()
    ids = pool.sweep("s", 4)
    claimed = claim_members(pool.ctxs[0], "w0", ids[1])
    assert sorted(job.id for _, job in claimed) == ids[:2]
    assert claim_members(pool.ctxs[1], "w1", ids[0]) == []
    claimed = claim_members(pool.ctxs[1], "w1", ids[3])
    assert sorted(job.id for _, job in claimed) == ids[2:]


def test_five_members_on_two_workers_train_three_and_two(workers: Any) -> None:
    pool = workers()
    for head in range(0, 12, 3):
        pool.populations = [[], []]
        pool.sweep(f"s{head}", 5)
        pool.lockstep([1, 0], head)
        pool.drain()
        assert pool.sizes() == [2, 3], (head, pool.populations)


def test_sixty_four_members_on_two_workers_of_sixteen_train_as_four_sixteens(
    workers: Any,
) -> None:
    pool = workers(max_population=16)
    pool.sweep("s", 64)
    pool.lockstep([0, 1])
    pool.drain()
    assert pool.sizes() == [16] * 4
    assert [len(ps) for ps in pool.populations] == [2, 2]


def test_more_workers_than_the_split_leave_the_parts_whole(workers: Any) -> None:
    """Two servers of two workers each on one store, a sweep split in two: two workers
    train, two find nothing, rather than four populations of one."""
    pool = workers(n=4, split=2)
    pool.sweep("s", 4)
    pool.lockstep([0, 1, 2, 3])
    pool.drain()
    assert pool.sizes() == [2, 2], pool.populations


@pytest.mark.parametrize(
    ("total", "split", "most", "sizes"),
    [
        (4, 2, 16, [2, 2]),
        (5, 2, 16, [3, 2]),
        (3, 4, 16, [1, 1, 1]),
        (64, 2, 16, [16, 16, 16, 16]),
        (40, 2, 16, [10, 10, 10, 10]),
        (33, 2, 16, [9, 8, 8, 8]),
        (7, 1, 1, [1] * 7),
        (1000, 8, 16_384, [125] * 8),
    ],
)
def test_parts_are_even_and_within_the_population_bound(
    total: int, split: int, most: int, sizes: list[int]
) -> None:
    parts = [part_of(i, total, split, most) for i in range(total)]
    assert parts == sorted(parts)  # members of a part are neighbours in creation order
    assert [parts.count(p) for p in sorted(set(parts))] == sizes
