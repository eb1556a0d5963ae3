"""The real services the tests run against (PostgreSQL, RabbitMQ, Redis), each test run in its
own database and under its own queue names, so that runs never see each other's data.

A service that is not reachable skips its tests, or fails them where
CURVEGAN_TEST_REQUIRE_SERVICES=1 (CI, where a silent skip would hide a broken setup).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _address(env: str, default: tuple[str, int]) -> tuple[str, int]:
    value = os.environ.get(env)
    if not value:
        return default
    host, _, port = value.rpartition(":")
    return host or default[0], int(port)


POSTGRES = _address("CURVEGAN_TEST_POSTGRES", ("127.0.0.1", 5432))
RABBITMQ = _address("CURVEGAN_TEST_RABBITMQ", ("127.0.0.1", 5672))
REDIS = _address("CURVEGAN_TEST_REDIS", ("127.0.0.1", 6379))


def require(name: str, host: str, port: int) -> None:
    """Skips the test (or fails it, where services are required) unless host:port accepts a
    TCP connection within a second."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} not reachable at {host}:{port}: {exc}"
    if os.environ.get("CURVEGAN_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CURVEGAN_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def xdist_worker() -> str:
    """This pytest-xdist worker's id ("gw0", "gw1", ...), or "main" in a run without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def unique_name(prefix: str) -> str:
    """A name no other test run (nor another xdist worker of this one) uses, for a queue, an
    exchange or a database: the prefix, the worker's id and a random part."""
    return f"{prefix}_{xdist_worker()}_{uuid.uuid4().hex[:12]}"


@contextmanager
def fresh_postgres_database(prefix: str = "curvegan_test") -> Iterator[str]:
    """A new, empty PostgreSQL database for the block, named after the xdist worker (see
    ``unique_name``), dropped after it; yields its SQLAlchemy URL."""
    # A server extra: only the tests that use a database need it.
    import psycopg
    from psycopg import sql

    host, port = POSTGRES
    require("PostgreSQL", host, port)
    name = unique_name(prefix)
    admin = {"host": host, "port": port, "user": "postgres", "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@{host}:{port}/{name}"
    finally:
        # FORCE: a test that failed may leave its connections open.
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def rabbitmq_url() -> str:
    host, port = RABBITMQ
    require("RabbitMQ", host, port)
    return f"amqp://guest:guest@{host}:{port}//"


def redis_url(db: int = 0) -> str:
    host, port = REDIS
    require("Redis", host, port)
    return f"redis://{host}:{port}/{db}"
