"""/docs (Swagger UI) and /redoc in real headless Chromium with the network cut off: every
request that is not to this machine is aborted (and fails the test), and each page renders
every operation of /openapi.json with no console error and no CSP violation, on a server with
an API key set (the docs stay open, the browser has no key). Also: the guard itself sees a page
reaching off the machine and any CSP violation, and a declared 401 is allowed while an
undeclared one, or one that never came, is not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.service.browser.conftest import KeyedServer, PageOpener
from tests.service.browser.harness import failed_fetch, guarded_context

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
RENDER_TIMEOUT_MS = 20_000
# Every page of the server has a CSP (tests/api/test_headers.py) that would stop a probe before
# the guard's router sees it: the guard's own tests run on a page with none, at the server's
# origin, so that relative fetches still reach the server.
BARE_PAGE = "/__bare_test_page"


def bare_page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.route(
        f"**{BARE_PAGE}", lambda r: r.fulfill(content_type="text/html", body="<!doctype html>")
    )
    page.goto(BARE_PAGE)
    return page


@pytest.fixture
def docs_url(keyed_browser_server: KeyedServer) -> str:
    """A server with CURVEGAN_API_KEY set, whose pages the browser opens without the key: the
    docs must stay open while /v1 is closed. (The docs pages have no code path that depends
    on the key; a second, keyless server would cost ~8 s of the suite and show nothing more.)
    """
    return keyed_browser_server.url


def operations(url: str) -> dict[tuple[str, str], dict]:
    """(METHOD, path) -> operation, from the server's /openapi.json (fetched without a key)."""
    r = httpx.get(f"{url}/openapi.json", timeout=10)
    assert r.status_code == 200, r.text
    return {
        (method.upper(), path): op
        for path, item in r.json()["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def test_swagger_ui_renders_every_operation_offline(
    docs_url: str, open_page: PageOpener, screenshot: Callable[..., Path]
) -> None:
    ops = operations(docs_url)
    assert len(ops) >= 20, sorted(ops)
    page = open_page(f"{docs_url}/docs")
    blocks = page.locator(".opblock")
    blocks.nth(len(ops) - 1).wait_for(timeout=RENDER_TIMEOUT_MS)
    assert blocks.count() == len(ops)
    shown = page.evaluate(
        """() => [...document.querySelectorAll('.opblock')].map(b => [
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').textContent.replace(/\\u200b/g, '').trim(),
            b.querySelector('.opblock-summary-description').textContent.trim(),
        ])"""
    )
    assert {(m, p): s for m, p, s in shown} == {k: op["summary"] for k, op in ops.items()}
    assert page.locator(".info .title").first.inner_text().startswith("curvegan")
    assert page.locator(".opblock-summary-description").first.is_visible()
    png = screenshot(page, "docs-swagger-ui")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    open_page.guard(page).check()


def test_redoc_renders_every_operation_offline(docs_url: str, open_page: PageOpener) -> None:
    ops = operations(docs_url)
    page = open_page(f"{docs_url}/redoc")
    sections = page.locator("[data-section-id^='operation/']")
    sections.nth(len(ops) - 1).wait_for(timeout=RENDER_TIMEOUT_MS)
    ids = sections.evaluate_all("els => els.map(e => e.dataset.sectionId)")
    assert sorted(ids) == sorted(f"operation/{op['operationId']}" for op in ops.values())
    headings = page.locator("[data-section-id^='operation/'] h2").all_inner_texts()
    assert set(headings) == {op["summary"] for op in ops.values()}
    assert page.locator("h1").first.inner_text().startswith("curvegan")
    # Its side menu's Redocly logo came from Redocly's CDN: the vendored bundle is patched
    # (scripts/vendor_assets.py PATCHES) to show a blank inline image instead.
    logo = page.locator("img[alt='redocly logo']").get_attribute("src", timeout=5000)
    assert logo is not None and logo.startswith("data:image/"), logo
    open_page.guard(page).check()


def test_the_guard_aborts_and_records_requests_that_leave_localhost(
    browser: Browser, keyed_browser_server: KeyedServer
) -> None:
    context, guard = guarded_context(browser, keyed_browser_server.url)
    try:
        page = bare_page(context)
        local = page.evaluate("fetch('/healthz').then(r => r.status)")
        outcome = page.evaluate(
            """async () => {
                new Image().src = 'http://203.0.113.7/pixel.png';
                try { await fetch('https://example.com/probe'); return 'reached'; }
                catch (e) { return 'aborted'; }
            }"""
        )
        page.wait_for_function("() => true")  # lets the image's request reach the router
        page.wait_for_timeout(200)
    finally:
        context.close()
    assert local == 200
    assert outcome == "aborted"
    assert sorted(guard.external) == [
        "GET http://203.0.113.7/pixel.png",
        "GET https://example.com/probe",
    ]
    problems = guard.problems()
    assert "request left localhost (aborted): GET https://example.com/probe" in problems
    assert any("console error: Failed to load resource" in p for p in problems), problems
    with pytest.raises(AssertionError, match=r"example\.com/probe"):
        guard.check()
    assert guard.problems() == []  # check() starts the record over


def test_a_declared_401_is_allowed_and_nothing_else(
    browser: Browser, keyed_browser_server: KeyedServer
) -> None:
    url = keyed_browser_server.url
    context, guard = guarded_context(browser, url)
    try:
        page = bare_page(context)
        fetch = "p => fetch(p).then(r => r.status)"
        assert page.evaluate(fetch, "/v1/jobs?limit=5") == 401
        page.wait_for_timeout(100)
        # undeclared: a console error
        assert len(guard.console_errors) == 1, guard.console_errors
        assert failed_fetch(401, "/v1/jobs").search(guard.console_errors[0])
        assert not failed_fetch(401, "/v1/jobs/x").search(guard.console_errors[0])
        assert not failed_fetch(422, "/v1/jobs").search(guard.console_errors[0])
        assert [p.split(":")[0] for p in guard.problems()] == ["console error"]
        # declared: allowed, and required
        guard.expect_console_error(failed_fetch(401, "/v1/jobs"))
        guard.check()
        guard.expect_console_error(failed_fetch(401, "/v1/sweeps"))
        assert guard.problems() == [
            f"expected console error never logged: /{failed_fetch(401, '/v1/sweeps').pattern}/"
        ]
        assert page.evaluate(fetch, "/v1/sweeps") == 401
        # a 401 elsewhere is still an error
        assert page.evaluate(fetch, "/v1/checkpoints") == 401
        page.wait_for_timeout(100)
        problems = guard.problems()
        assert len(problems) == 1 and "/v1/checkpoints" in problems[0], problems
        # with the key, the same request passes and logs nothing
        keyed, keyed_guard = guarded_context(browser, url, api_key=keyed_browser_server.api_key)
        try:
            kpage = bare_page(keyed)
            assert kpage.evaluate(fetch, "/v1/jobs") == 200
            keyed_guard.check()
        finally:
            keyed.close()
    finally:
        context.close()


def test_the_guard_fails_on_any_csp_violation(
    browser: Browser, keyed_browser_server: KeyedServer
) -> None:
    """On /docs (scripts from this origin and its own inline ones only), a page that runs an
    injected inline script, loads an image from another site or sets a style attribute breaks
    its policy: each violation is recorded by directive, and check() fails on them."""
    context, guard = guarded_context(browser, keyed_browser_server.url)
    try:
        page = context.new_page()
        page.goto("/docs")
        page.locator(".opblock").first.wait_for(timeout=RENDER_TIMEOUT_MS)
        assert guard.problems() == []  # the page under its own policy breaks none of it
        ran = page.evaluate(
            """() => {
                const s = document.createElement('script');
                s.textContent = 'window.injected = true';
                document.body.append(s);
                new Image().src = 'http://203.0.113.7/pixel.png';
                document.body.setAttribute('style', 'color: red');
                return window.injected === true;
            }"""
        )
        # The events are dispatched as tasks after the script: wait for their reports.
        for _ in range(100):
            if len(guard.csp_violations) >= 3:
                break
            page.wait_for_timeout(50)
    finally:
        context.close()
    assert ran is False
    directives = sorted(v.split(" ")[0] for v in guard.csp_violations)
    assert directives == ["img-src", "script-src-elem", "style-src-attr"], guard.csp_violations
    assert any("203.0.113.7" in v for v in guard.csp_violations)
    assert guard.external == []  # refused by the policy before any request was made
    assert sum(p.startswith("CSP violation: ") for p in guard.problems()) == 3
    with pytest.raises(AssertionError, match="CSP violation: script-src-elem refused inline"):
        guard.check()
    assert guard.problems() == []
