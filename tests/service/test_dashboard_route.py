"""The dashboard's routes in-process: the page and its modules are served outside /v1 (so
they load without the API key), revalidated on every load, and left out of the OpenAPI
document. What the page does is tested in a real browser (tests/service/browser)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from service.api.app import create_app
from service.api.dashboard import DASHBOARD_DIR
from service.settings import Settings
from tests.conftest import asgi_call


@pytest.fixture(scope="module")
def get(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = Path(tmp_path_factory.mktemp("dashboard-inproc"))
    call = asgi_call(create_app(Settings(data_dir=data, api_key="sekrit")))
    return lambda url, method="GET": call(method, url)


def test_the_page_and_every_module_it_names_load_without_the_key(get: Any) -> None:
    page = get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert get("/v1/jobs").status_code == 401  # while the API itself wants the key
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        r = get(asset)
        assert r.status_code == 200, asset
        assert r.content, asset
    # Every module a module imports is there too (relative imports, no bundler).
    for module in DASHBOARD_DIR.glob("*.js"):
        for name in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert (DASHBOARD_DIR / name).is_file(), f"{module.name} imports {name}"


def test_head_answers_like_get_and_the_page_is_not_in_the_api_document(get: Any) -> None:
    head = get("/", "HEAD")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get("/").headers["content-length"]
    paths = get("/openapi.json").json()["paths"]
    assert not [
        p
        for p in paths
        if not p.startswith("/v1/") and p not in {"/healthz", "/readyz", "/metrics"}
    ], paths
