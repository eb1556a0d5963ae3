"""SQLAlchemy engines for a store URL: SQLite tuned for several writer processes, or a server
database (PostgreSQL) behind a plain pool."""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine


def make_engines(url: str | sa.URL) -> tuple[Engine, Engine]:
    """The (read, write) engines for ``url``; one and the same engine unless SQLite."""
    parsed = _with_psycopg(sa.make_url(url))
    if parsed.get_backend_name() == "sqlite":
        # Writers take the lock up front: a deferred transaction that reads and then writes
        # can fail at once with SQLITE_BUSY instead of waiting its turn.
        return _sqlite_engine(parsed, "BEGIN"), _sqlite_engine(parsed, "BEGIN IMMEDIATE")
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # Every transaction here takes milliseconds. One left open (its process paused or cut
        # off mid-write) would hold its row locks, and so its job, until it came back: the
        # server ends such a session instead, and the job's lease can lapse and move on.
        connect_args["options"] = "-c idle_in_transaction_session_timeout=10000"
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    return engine, engine


def _with_psycopg(url: sa.URL) -> sa.URL:
    """A PostgreSQL URL without a driver gets psycopg 3, the one installed (SQLAlchemy's own
    default is psycopg2)."""
    # "postgres://" is what many hosts hand out, though SQLAlchemy no longer accepts it.
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def _switch_to_wal(cursor: Any) -> None:
    # Processes opening a new file at once (several servers, or workers, starting together)
    # race to switch it to WAL; SQLite can answer the loser "database is locked" at once,
    # without the busy handler (it failed a test of 4 migrating processes once under load).
    for attempt in range(50):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.05 + random.random() * 0.05)


def _sqlite_engine(url: str | sa.URL, begin: str) -> Engine:
    """A SQLite engine whose transactions start with the statement ``begin``."""
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First, so that switching a new file to WAL waits for a racing process too.
        cursor.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine
