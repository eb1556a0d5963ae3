"""Browser fixtures: real headless Chromium (Debian's `chromium`, driven by Playwright's Python
package through ``executable_path``; Playwright's browser download is never used) against real
servers (uvicorn on a real port, real SQLite).

Without the playwright package or a chromium binary the tests skip saying why, or fail where
CURVEGAN_TEST_REQUIRE_SERVICES=1 (CI). `make test` installs chromium with apt when it is
missing and runs as root (scripts/ensure_chromium.sh).

Every page is opened through ``open_page``: only requests to 127.0.0.1/localhost go through,
every other one is aborted and recorded, and the test fails at teardown if there was any, or
any console error or uncaught page error it did not declare, or any Content-Security-Policy
violation at all (``PageGuard``, harness.py). No page allows eval: give
``page.wait_for_function`` a function (``"() => ..."``), never a bare expression, which
Playwright polls with eval in the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import ServerPool
from tests.helpers import ROOT, Server, started_server
from tests.service.browser.harness import (
    CHROMIUM_ARGS,
    PageGuard,
    chromium_path,
    guarded_context,
    require_browser_tools,
    save_screenshot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

# One warm worker process (each costs a torch import at start): small jobs train one after the
# other. A module sets BROWSER_SERVER_ENV to add or override settings for its two servers.
DEFAULT_BROWSER_SERVER_ENV = {"CURVEGAN_MAX_CONCURRENT_JOBS": "1"}
SCREENSHOT_DOCS_DIR = ROOT / "docs" / "img"


@dataclass
class KeyedServer:
    """A server started with CURVEGAN_API_KEY=``api_key``; ``client()`` sends the key."""

    server: Server
    api_key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self) -> httpx.Client:
        return self.server.client(headers=self.auth)


class PageOpener:
    """The ``open_page`` fixture's value: ``open_page(url, *, api_key=None) -> Page`` opens
    ``url`` in a fresh context; ``open_page.guard(page)`` is that page's ``PageGuard``."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._opened: list[tuple[BrowserContext, PageGuard]] = []
        self._guards: dict[int, PageGuard] = {}

    def __call__(self, base_url: str, *, api_key: str | None = None) -> Page:
        context, guard = guarded_context(self._browser, base_url, api_key=api_key)
        self._opened.append((context, guard))
        page = context.new_page()
        self._guards[id(page)] = guard
        page.goto(base_url)
        return page

    def guard(self, page: Page) -> PageGuard:
        return self._guards[id(page)]

    def close_and_check(self) -> None:
        for context, _ in self._opened:
            context.close()
        problems = [p for _, guard in self._opened for p in guard.problems()]
        assert not problems, "the browser saw:\n  " + "\n  ".join(problems)


# Package scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and every later test calling asyncio.run() would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the browser tests: Debian's binary (CURVEGAN_TEST_CHROMIUM, else
    `chromium` on PATH, else /usr/bin/chromium) launched by Playwright's sync API with
    CHROMIUM_ARGS (no sandbox, no GPU, no QUIC, none of Chromium's own background traffic,
    no name resolves but this machine's). Skips (fails under CURVEGAN_TEST_REQUIRE_SERVICES=1)
    without the playwright package or a chromium binary."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require_browser_tools(f"playwright not installed ({exc}): pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        require_browser_tools(
            "chromium not found (CURVEGAN_TEST_CHROMIUM, else PATH, else /usr/bin/chromium): "
            "apt-get install chromium, or run `make test` as root"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[PageOpener]:
    """``open_page(base_url, *, api_key=None) -> Page``: a new BrowserContext (1280x860,
    ``base_url`` as its base URL, so ``page.goto("/redoc")`` works) with one page that has
    loaded ``base_url``. With ``api_key``, every request the page makes carries
    ``Authorization: Bearer <api_key>`` (leave it None to test a page's own key handling).

    Requests to 127.0.0.1/localhost go through; every other one is aborted and recorded.
    ``open_page.guard(page)`` is the page's ``PageGuard``: ``.external``,
    ``.console_errors``, ``.page_errors``, and ``.expect_console_error(pattern)`` to declare
    the console errors a 401/422 flow causes, e.g.
    ``open_page.guard(page).expect_console_error(failed_fetch(401, "/v1/jobs"))``.

    At teardown every context is closed and the test fails listing any request that left
    localhost, any undeclared console error, any page error, any CSP violation, and any
    declared console error that never came."""
    opener = PageOpener(browser)
    yield opener
    opener.close_and_check()


def _server_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {**DEFAULT_BROWSER_SERVER_ENV, **getattr(request.module, "BROWSER_SERVER_ENV", {})}


@pytest.fixture(scope="module")
def browser_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real server for the module (uvicorn subprocess, real port, real SQLite in a fresh
    data dir), no API key: DEFAULT_BROWSER_SERVER_ENV updated by the module's
    BROWSER_SERVER_ENV, if it has one. ``.url`` is ``http://127.0.0.1:<port>``."""
    with started_server(tmp_path_factory, "browser", _server_env(request)) as server:
        yield server


@pytest.fixture(scope="session")
def browser_api_key() -> str:
    """The key of the keyed browser servers: random, one per session."""
    return f"browser-key-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def keyed_browser_server(
    request: pytest.FixtureRequest, server_pool: ServerPool, browser_api_key: str
) -> KeyedServer:
    """As ``browser_server``, with CURVEGAN_API_KEY set to a random key: a ``KeyedServer``
    with ``.url``, ``.api_key``, ``.auth`` (the header dict), ``.client()`` (httpx, sends the
    key) and ``.server`` (the Server). Shared by the modules with the same settings (the
    session's server for them): its tests find what they made by id."""
    env = {**_server_env(request), "CURVEGAN_API_KEY": browser_api_key}
    return KeyedServer(server=server_pool.get(env), api_key=browser_api_key)


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``screenshot(page, name, selector=None) -> Path``: the page (or the element
    ``selector`` finds) as ``<tmp>/<name>.png``; with CURVEGAN_UPDATE_SCREENSHOTS=1 also
    docs/img/<name>.png (the README's pictures)."""
    tmp_dir = tmp_path_factory.mktemp("screenshots")

    def take(page: Page, name: str, selector: str | None = None) -> Path:
        return save_screenshot(page, name, tmp_dir, SCREENSHOT_DOCS_DIR, selector)

    return take
