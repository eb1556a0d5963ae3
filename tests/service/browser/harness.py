"""What the browser fixtures (conftest.py) are made of: finding Debian's chromium, the launch
flags that keep it off the network, and ``PageGuard``, which lets a page reach only this
machine and records everything else it tried, its console errors, its uncaught errors and every
Content-Security-Policy violation.

Kept out of conftest.py so that tests can import ``PageGuard``, ``guarded_context`` and
``failed_fetch`` (a test of the guard itself drives it without the fixture's teardown).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Route,
        WebError,
    )

# Chromium fetches Google hosts on its own (component updates, field trials, safe browsing,
# sync) unless told not to; the resolver rule is the backstop for anything no flag covers:
# every name but this machine's fails to resolve, whether or not Playwright's routing saw it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 1280, "height": 860}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Never leave the browser: inline data, object URLs, the blank page.
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
# Runs in every page and frame before the page's own scripts: each violation is reported to
# the guard as it happens, through a binding (the page's CSP does not apply to it), so a test
# fails on any by its directive, whatever the console said about it or was allowed to say.
CSP_BINDING = "__curveganCspViolation"
CSP_LISTENER = f"""
document.addEventListener("securitypolicyviolation", (e) => {{
  const sample = e.sample ? ` (${{e.sample}})` : "";
  window.{CSP_BINDING}(`${{e.effectiveDirective}} refused ${{e.blockedURI || "inline"}}`
    + ` at ${{e.sourceFile || e.documentURI}}:${{e.lineNumber}}${{sample}}`);
}}, true);
"""


def require_browser_tools(reason: str) -> None:
    """Skips the test saying ``reason`` or, where CURVEGAN_TEST_REQUIRE_SERVICES=1 (CI), fails
    it: the same rule as tests/services.py ``require()``."""
    if os.environ.get("CURVEGAN_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CURVEGAN_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """CURVEGAN_TEST_CHROMIUM when set (that one only), else `chromium` on PATH, else
    /usr/bin/chromium: the executable file, or None."""
    chosen = os.environ.get("CURVEGAN_TEST_CHROMIUM")
    candidates = [chosen] if chosen else [shutil.which("chromium"), "/usr/bin/chromium"]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def is_local(url: str) -> bool:
    """Whether a request to ``url`` stays on this machine."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOCAL_HOSTS


def failed_fetch(status: int, path: str) -> re.Pattern[str]:
    """The console error Chromium logs for a response of ``status`` to a request for ``path``
    (exactly that path, any query), e.g. ``failed_fetch(401, "/v1/jobs")`` matches
    ``Failed to load resource: the server responded with a status of 401 (Unauthorized)
    [http://127.0.0.1:PORT/v1/jobs?limit=20]`` and nothing for another status or path."""
    return re.compile(
        rf"^Failed to load resource: the server responded with a status of {status}\b.*"
        rf" \[https?://[^/\]]+{re.escape(path)}(\?[^\]]*)?\]$"
    )


@dataclass
class PageGuard:
    """One browser context's record: ``external`` (every request that would have left this
    machine, aborted), ``console_errors`` (console messages of type "error", as
    ``"<text> [<source url>]"``), ``page_errors`` (uncaught exceptions and rejections) and
    ``csp_violations`` (every ``securitypolicyviolation`` event, as ``"<directive> refused
    <what> at <source>:<line>"``: none is ever allowed).

    ``expect_console_error(pattern)`` allows the console errors ``pattern`` matches (``re``
    search) and requires at least one: a test of a 401 or 422 flow names exactly the failed
    request it causes (see ``failed_fetch``), and nothing broader.

    ``problems()`` lists what ``check()`` fails on. ``check()`` asserts there is none so far
    and starts the record over (an expectation once met stays allowed): the fixture's
    teardown calls it, and a test may call it at a point of its choosing.
    """

    external: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)
    met: set[str] = field(default_factory=set)

    def expect_console_error(self, pattern: str | re.Pattern[str]) -> None:
        self.expected.append(re.compile(pattern) if isinstance(pattern, str) else pattern)

    def route(self, route: Route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.external.append(f"{route.request.method} {url}")
            route.abort("blockedbyclient")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            source = message.location.get("url", "") if message.location else ""
            self.console_errors.append(f"{message.text} [{source}]")

    def on_web_error(self, error: WebError) -> None:
        err = error.error
        self.page_errors.append(f"{err.name or 'Error'}: {err.message}")

    def on_csp_violation(self, description: str) -> None:
        self.csp_violations.append(description)

    def _unmet(self) -> list[re.Pattern[str]]:
        return [
            p
            for p in self.expected
            if p.pattern not in self.met and not any(p.search(e) for e in self.console_errors)
        ]

    def problems(self) -> list[str]:
        found = [f"request left localhost (aborted): {r}" for r in self.external]
        found += [
            f"console error: {e}"
            for e in self.console_errors
            if not any(p.search(e) for p in self.expected)
        ]
        found += [f"page error: {e}" for e in self.page_errors]
        found += [f"CSP violation: {v}" for v in self.csp_violations]
        found += [f"expected console error never logged: /{p.pattern}/" for p in self._unmet()]
        return found

    def check(self) -> None:
        problems = self.problems()
        unmet = {p.pattern for p in self._unmet()}
        self.met |= {p.pattern for p in self.expected} - unmet
        self.external.clear()
        self.console_errors.clear()
        self.page_errors.clear()
        self.csp_violations.clear()
        assert not problems, "the browser saw:\n  " + "\n  ".join(problems)


def guarded_context(
    browser: Browser, base_url: str | None = None, *, api_key: str | None = None
) -> tuple[BrowserContext, PageGuard]:
    """A fresh context (1280x860) whose every page is watched by a new ``PageGuard`` (its
    requests, console, errors and CSP violations); with ``api_key``, every request carries
    ``Authorization: Bearer <key>``."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else None
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, extra_http_headers=headers)
    guard = PageGuard()
    context.route("**/*", guard.route)
    context.on("console", guard.on_console)
    context.on("weberror", guard.on_web_error)
    context.expose_function(CSP_BINDING, guard.on_csp_violation)
    context.add_init_script(CSP_LISTENER)
    return context, guard


def save_screenshot(
    page: Page, name: str, tmp_dir: Path, docs_dir: Path, selector: str | None = None
) -> Path:
    """Writes ``<tmp_dir>/<name>.png`` (the page, or only the element ``selector`` finds)
    and, when CURVEGAN_UPDATE_SCREENSHOTS=1, the same to ``<docs_dir>/<name>.png``; returns
    the first."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"screenshot name {name!r}: letters, digits, '_', '.', '-' only")
    path = tmp_dir / f"{name}.png"
    shot = page.locator(selector).screenshot if selector else page.screenshot
    png = shot(path=str(path))
    if os.environ.get("CURVEGAN_UPDATE_SCREENSHOTS") == "1":
        docs_dir.mkdir(parents=True, exist_ok=True)
        (docs_dir / f"{name}.png").write_bytes(png)
    return path
