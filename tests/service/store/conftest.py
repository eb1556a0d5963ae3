"""One migrated, empty store of each kind (SQLite file, PostgreSQL) for the store's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from service.store import Store
from service.store.engine import make_engines
from service.store.tables import meta
from tests.services import fresh_postgres_database


def execute(url: str, *statements: str) -> Any:
    """Runs SQL statements in one transaction on a connection of its own; returns the last
    one's first value, if any."""
    _, write = make_engines(url)
    value = None
    try:
        with write.begin() as conn:
            for statement in statements:
                result = conn.execute(sa.text(statement))
                value = result.scalar() if result.returns_rows else None
            return value
    finally:
        write.dispose()


@pytest.fixture(scope="module")
def postgres_store_url() -> Iterator[str]:
    """The module's own PostgreSQL database, emptied before each test: far faster than one
    database per test, and the session database stays untouched for tests that expect it
    fresh (test_migrations)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_store_url")
    s = Store(url)
    s.migrate()
    if request.param == "postgresql":
        # DELETE, not TRUNCATE: several times faster on tables this small.
        execute(url, *(f"DELETE FROM {table}" for table in meta.tables))
    try:
        yield s
    finally:
        # Before the database is dropped: open connections would hold it.
        s.dispose()
