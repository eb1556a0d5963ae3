"""One real server per service test module (a module sets SERVER_ENV for extra settings)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, started_server


@pytest.fixture(scope="module")
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    with started_server(tmp_path_factory, name, getattr(request.module, "SERVER_ENV", {})) as s:
        yield s


@pytest.fixture
def mc(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        yield c
