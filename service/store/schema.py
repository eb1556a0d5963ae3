"""Brings a store's database to the newest schema with the Alembic migrations in migrations/,
safely when several processes start on one database at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from .engine import make_engines

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# What `meta.create_all` made before there were migrations: such databases start from here.
BASELINE = "0001"
# Any fixed number: every process that migrates a curvegan database takes the same lock.
_PG_LOCK_KEY = 0x6375727665_67616E  # "curve" "gan"
# Alembic's `context` is module-global, so one migration per process at a time.
_in_process = threading.Lock()


def migrate(engine: Engine) -> None:
    """Brings the database to the newest revision in one transaction, holding a lock that
    other processes wait on: an empty database gets every migration, one made before
    migrations existed is upgraded in place, and one already at the head is left alone."""
    with _in_process, _locked_transaction(engine) as conn:
        config = alembic_config(conn)
        inspector = sa.inspect(conn)
        if inspector.has_table("jobs") and not inspector.has_table("alembic_version"):
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration without an alembic.ini: the migrations ship in the package."""
    config = Config()
    # The path goes through ConfigParser, which reads "%" as interpolation.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


@contextmanager
def _locked_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other migrating process can hold at once."""
    if engine.dialect.name == "sqlite":
        if _in_memory(engine.url):
            # No other process can see this database; another engine would see another one.
            with engine.begin() as conn:
                yield conn
            return
        # Our own engine: whichever engine was passed, the transaction must begin with
        # BEGIN IMMEDIATE, whose write lock makes the others wait from the first read on.
        _, writer = make_engines(engine.url)
        try:
            with writer.begin() as conn:
                yield conn
        finally:
            writer.dispose()
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Released at commit or rollback, so a crashed migration never leaves it held.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        yield conn


def _in_memory(url: sa.URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
