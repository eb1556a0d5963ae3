"""Security headers on every response (pages, the API, errors from the gate and the routes),
and the Content-Security-Policy each kind of response gets: the dashboard and static files
load only from this origin, /docs and /redoc allow exactly their own inline scripts by hash,
figures may only be styled by the browser's own image page, and everything else (JSON,
errors) may load nothing. Whether the pages work under
their policies is tested in Chromium (tests/service/browser: the guard fails on any
violation)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from service.api.app import create_app
from service.settings import Settings
from tests.conftest import AppClient, asgi_call, in_process_app
from tests.helpers import tiny_checkpoint_bytes

OTHER_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
DASHBOARD_CSP = {
    "default-src": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
}
NOTHING_CSP = {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


def policy(r: httpx.Response) -> dict[str, list[str]]:
    """The response's one Content-Security-Policy as {directive: sources}."""
    values = r.headers.get_list("content-security-policy")
    assert len(values) == 1, values
    parsed = [d.split() for d in values[0].split(";") if d.strip()]
    directives = {d[0]: d[1:] for d in parsed}
    assert len(directives) == len(parsed), f"a directive given twice: {values[0]}"
    return directives


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[str] = []
        self._open: bool | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = "src" not in dict(attrs)
            if self._open:
                self.bodies.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.bodies[-1] += data


def inline_script_hashes(html: str) -> set[str]:
    parser = _InlineScripts()
    parser.feed(html)
    return {
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
        for b in parser.bodies
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppClient]:
    """The default app in this process, no workers: these requests train nothing."""
    data = Path(tmp_path_factory.mktemp("headers"))
    with in_process_app(data, workers=False) as app, app.client() as c:
        yield c


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., httpx.Response]:
    """An app with an API key, for the gate's own 401s (answered before any store use)."""
    data = Path(tmp_path_factory.mktemp("headers-keyed"))
    return asgi_call(create_app(Settings(data_dir=data, api_key="sekrit")))


ALL = [
    ("GET", "/", 200),
    ("HEAD", "/", 200),
    ("GET", "/static/dashboard/app.js", 200),
    ("GET", "/static/vendor/uplot/uPlot.min.css", 200),
    ("GET", "/docs", 200),
    ("GET", "/redoc", 200),
    ("GET", "/healthz", 200),
    ("GET", "/metrics", 200),
    ("GET", "/openapi.json", 200),
    ("GET", "/v1/jobs", 200),
    ("GET", "/v1/jobs/job_missing", 404),
    ("POST", "/v1/jobs", 422),
    ("DELETE", "/v1/jobs", 405),
    ("GET", "/nowhere", 404),
    ("GET", "/static/dashboard/missing.js", 404),
]


@pytest.mark.parametrize(("method", "path", "status"), ALL)
def test_every_response_carries_the_security_headers(
    client: AppClient, method: str, path: str, status: int
) -> None:
    kw = {"json": {"config": {"lr_g": 2}}} if method == "POST" else {}
    r = client.request(method, path, **kw)
    assert r.status_code == status, r.text
    for name, value in OTHER_HEADERS.items():
        assert r.headers.get_list(name) == [value], (name, r.headers)
    csp = policy(r)
    assert csp["frame-ancestors"] == ["'none'"]
    every_source = {s for sources in csp.values() for s in sources}
    assert "'unsafe-eval'" not in every_source, csp
    for directive in ("default-src", "script-src", "script-src-elem", "script-src-attr"):
        assert "'unsafe-inline'" not in csp.get(directive, []), csp


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/static/dashboard/app.js",
        "/static/dashboard/style.css",
        "/static/vendor/uplot/uPlot.iife.min.js",
    ],
)
def test_the_dashboard_and_its_files_load_only_from_this_origin(
    client: AppClient, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert policy(r) == DASHBOARD_CSP


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/v1/jobs", 200),
        ("GET", "/v1/jobs/job_missing", 404),
        ("GET", "/v1/jobs/job_missing/figure.png", 404),
        ("POST", "/v1/jobs", 422),
        ("GET", "/nowhere", 404),
        ("GET", "/docs/", 307),  # a redirect to /docs
    ],
)
def test_the_api_and_its_errors_may_load_nothing(
    client: AppClient, method: str, path: str, status: int
) -> None:
    kw = {"json": {"config": {"lr_g": 2}}} if method == "POST" else {}
    r = client.request(method, path, **kw)
    assert r.status_code == status, r.text
    assert policy(r) == NOTHING_CSP


def test_a_figure_loads_nothing_and_only_its_image_page_is_styled(client: AppClient) -> None:
    r = client.post(
        "/v1/checkpoints",
        content=tiny_checkpoint_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    png = client.get(f"/v1/checkpoints/{r.json()['id']}/figure.png?n=2&width=320&height=240")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert policy(png) == {**NOTHING_CSP, "style-src": ["'unsafe-inline'"]}


def test_the_gates_refusals_may_load_nothing(keyed: Callable[..., httpx.Response]) -> None:
    r = keyed("GET", "/v1/jobs")
    assert r.status_code == 401
    assert policy(r) == NOTHING_CSP
    assert keyed("GET", "/").status_code == 200  # the page stays open without the key
    assert policy(keyed("GET", "/")) == DASHBOARD_CSP


def test_swagger_ui_allows_exactly_its_own_inline_scripts(client: AppClient) -> None:
    r = client.get("/docs")
    hashes = inline_script_hashes(r.text)
    assert hashes, "FastAPI's Swagger page starts Swagger UI from an inline script"
    csp = policy(r)
    assert csp["script-src"][0] == "'self'" and set(csp["script-src"][1:]) == hashes
    assert len(csp["script-src"]) == len(hashes) + 1
    # Its stylesheet draws icons as data: images; nothing else beyond the page policy.
    assert csp == {**DASHBOARD_CSP, "script-src": csp["script-src"], "img-src": ["'self'", "data:"]}


def test_redoc_runs_no_inline_script_and_only_styles_inline(client: AppClient) -> None:
    r = client.get("/redoc")
    assert inline_script_hashes(r.text) == set()
    assert policy(r) == {
        **DASHBOARD_CSP,
        "script-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "worker-src": ["blob:"],
    }
