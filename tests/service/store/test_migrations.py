"""The Alembic migrations against real databases: they build exactly tables.meta, upgrade a
database made before migrations existed without losing rows, do nothing at the head, and
survive several processes migrating one database at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from service.store import tables
from service.store.engine import make_engines
from service.store.schema import alembic_config, migrate
from tests.conftest import ROOT
from tests.services import fresh_postgres_database

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

# The schema before migrations, as `meta.create_all` wrote it into users' databases (SQLite's
# own record of it, in sqlite_master); PostgreSQL reads the same types.
OLD_SCHEMA = [
    """CREATE TABLE jobs (
        id VARCHAR(64) NOT NULL,
        seq BIGINT NOT NULL,
        name VARCHAR(200),
        state VARCHAR(16) NOT NULL,
        config JSON NOT NULL,
        steps INTEGER NOT NULL,
        step INTEGER NOT NULL,
        metrics JSON,
        quality JSON,
        created_at FLOAT NOT NULL,
        started_at FLOAT,
        finished_at FLOAT,
        error TEXT,
        resumed_from VARCHAR(64),
        cancel_requested BOOLEAN NOT NULL,
        idempotency_key VARCHAR(200),
        request_hash VARCHAR(64),
        PRIMARY KEY (id),
        UNIQUE (idempotency_key)
    )""",
    "CREATE INDEX ix_jobs_state ON jobs (state)",
    """CREATE TABLE metrics (
        job_id VARCHAR(64) NOT NULL,
        step INTEGER NOT NULL,
        d_loss FLOAT,
        g_loss FLOAT,
        d_accuracy FLOAT,
        d_score FLOAT,
        in_band FLOAT,
        resid FLOAT,
        w1_a FLOAT,
        created_at FLOAT NOT NULL,
        PRIMARY KEY (job_id, step)
    )""",
    """CREATE TABLE checkpoints (
        id VARCHAR(64) NOT NULL,
        seq BIGINT NOT NULL,
        job_id VARCHAR(64),
        step INTEGER NOT NULL,
        config JSON NOT NULL,
        metrics JSON,
        quality JSON,
        created_at FLOAT NOT NULL,
        size_bytes INTEGER NOT NULL,
        sha256 VARCHAR(64) NOT NULL,
        source VARCHAR(16) NOT NULL,
        PRIMARY KEY (id)
    )""",
    "CREATE INDEX ix_checkpoints_job_id ON checkpoints (job_id)",
]
OLD_ROWS = [
    """INSERT INTO jobs (id, seq, name, state, config, steps, step, metrics, quality, created_at,
        started_at, finished_at, error, resumed_from, cancel_requested, idempotency_key,
        request_hash)
    VALUES ('job1', 1, 'old', 'succeeded', '{"steps": 100}', 100, 100, '{"d_loss": 0.5}',
        '{"resid": 0.1}', 1.0, 2.0, 3.0, NULL, NULL, FALSE, 'key1', 'hash1')""",
    """INSERT INTO metrics (job_id, step, d_loss, g_loss, d_accuracy, d_score, in_band, resid,
        w1_a, created_at)
    VALUES ('job1', 100, 0.5, 0.7, 0.6, 0.4, 0.9, 0.1, 0.2, 2.5)""",
    """INSERT INTO checkpoints (id, seq, job_id, step, config, metrics, quality, created_at,
        size_bytes, sha256, source)
    VALUES ('ckpt1', 1, 'job1', 100, '{"steps": 100}', NULL, NULL, 3.0, 1234, 'abc', 'job')""",
]

# One migrating process: waits at a barrier (a line on stdin) so that all start together.
CHILD = textwrap.dedent(
    """
    import sys
    from service.store.engine import make_engines
    from service.store.schema import migrate

    _, engine = make_engines(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    migrate(engine)
    engine.dispose()
    """
)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for this test only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Collects engines to dispose of at teardown, before their database is dropped."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def writer(engines: list[Engine], url: str) -> Engine:
    read, write = make_engines(url)
    engines.extend({read, write})
    return write


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_diff(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match tables.meta: nothing, when
    the migrations and tables.py agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, tables.meta)


def assert_at_head(engine: Engine) -> None:
    assert revision(engine) == HEAD
    assert schema_diff(engine) == []


def test_fresh_sqlite_migrates_to_head(tmp_path: Path, engines: list[Engine]) -> None:
    engine = writer(engines, f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    assert_at_head(engine)


def test_fresh_postgres_migrates_to_head(postgres_url: str, engines: list[Engine]) -> None:
    engine = writer(engines, postgres_url)
    migrate(engine)
    assert_at_head(engine)


def test_in_memory_sqlite_migrates_to_head() -> None:
    # One shared connection: each new connection would open another empty database.
    engine = sa.create_engine("sqlite://", poolclass=sa.StaticPool)
    try:
        migrate(engine)
        assert_at_head(engine)
    finally:
        engine.dispose()


def test_database_from_before_migrations_is_upgraded_in_place(
    fresh_url: str, engines: list[Engine]
) -> None:
    engine = writer(engines, fresh_url)
    with engine.begin() as conn:
        for statement in OLD_SCHEMA + OLD_ROWS:
            conn.exec_driver_sql(statement)
    assert revision(engine) is None

    migrate(engine)

    assert_at_head(engine)
    with engine.connect() as conn:
        job = conn.execute(sa.select(tables.jobs)).mappings().one()
        metric = conn.execute(sa.select(tables.metrics)).mappings().one()
        checkpoint = conn.execute(sa.select(tables.checkpoints)).mappings().one()
    assert job["id"] == "job1"
    assert (job["state"], job["step"], job["idempotency_key"]) == ("succeeded", 100, "key1")
    assert job["config"] == {"steps": 100}
    assert job["metrics"] == {"d_loss": 0.5}
    assert job["cancel_requested"] is False
    assert (job["attempt"], job["lost_count"], job["save_requests"]) == (0, 0, 0)
    assert job["suspend_requested"] is False
    assert job["worker_id"] is job["lease_expires_at"] is job["published_at"] is None
    assert (metric["job_id"], metric["step"], metric["g_loss"]) == ("job1", 100, 0.7)
    assert (checkpoint["id"], checkpoint["job_id"], checkpoint["size_bytes"]) == (
        "ckpt1",
        "job1",
        1234,
    )
    # The unique constraint came through the upgrade.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            tables.jobs.insert().values(
                id="job2",
                seq=2,
                state="queued",
                config={},
                steps=1,
                step=0,
                created_at=4.0,
                cancel_requested=False,
                idempotency_key="key1",
            )
        )


def test_migrating_at_head_changes_nothing(fresh_url: str, engines: list[Engine]) -> None:
    engine = writer(engines, fresh_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            tables.jobs.insert().values(
                id="job1", seq=1, state="queued", config={}, steps=1, step=0, created_at=1.0
            )
        )
    writes: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {
            "CREATE",
            "ALTER",
            "DROP",
            "INSERT",
            "UPDATE",
            "DELETE",
        }:
            writes.append(statement)

    # On the Engine class: migrate() may open its own engine for the same database.
    sa.event.listen(Engine, "before_cursor_execute", record)
    try:
        migrate(engine)
    finally:
        sa.event.remove(Engine, "before_cursor_execute", record)

    assert writes == []
    assert_at_head(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(tables.jobs.c.id)).scalars().all() == ["job1"]


@pytest.mark.parametrize("old", [False, True], ids=["empty", "from-before-migrations"])
def test_processes_migrating_at_once_all_succeed(
    fresh_url: str, engines: list[Engine], old: bool
) -> None:
    if old:
        with writer(engines, fresh_url).begin() as conn:
            for statement in OLD_SCHEMA + OLD_ROWS:
                conn.exec_driver_sql(statement)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, fresh_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.communicate()[1]
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (_, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr
    engine = writer(engines, fresh_url)
    assert_at_head(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.jobs)).scalar() == old
