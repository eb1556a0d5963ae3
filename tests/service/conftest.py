"""A service test module's server: the session's shared server for the module's SERVER_ENV
(the default settings when it sets none), so modules with the same settings share one. Tests
on it assert only on what they made, and leave nothing running."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerPool
from tests.helpers import Server


@pytest.fixture(scope="module")
def module_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    return server_pool.get(getattr(request.module, "SERVER_ENV", {}))


@pytest.fixture
def mc(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        yield c
