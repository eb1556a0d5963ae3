"""The browser harness without a browser: where chromium is looked for, what counts as this
machine, the 401/422 console patterns, the guard's record, the skip-or-fail rule for missing tools
and where screenshots go."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.browser.harness import (
    PageGuard,
    chromium_path,
    failed_fetch,
    is_local,
    require_browser_tools,
    save_screenshot,
)


def test_an_explicit_chromium_is_the_only_one_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("CURVEGAN_TEST_CHROMIUM", str(fake))
    assert chromium_path() is None  # not executable
    fake.chmod(0o755)
    assert chromium_path() == str(fake)
    monkeypatch.setenv("CURVEGAN_TEST_CHROMIUM", str(tmp_path / "missing"))
    assert chromium_path() is None


def test_missing_tools_skip_or_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURVEGAN_TEST_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium not found"):
        require_browser_tools("chromium not found")
    monkeypatch.setenv("CURVEGAN_TEST_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match=r"chromium not found .*REQUIRE_SERVICES=1"):
        require_browser_tools("chromium not found")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/docs", True),
        ("http://localhost:8000/v1/jobs", True),
        ("http://[::1]:8000/", True),
        ("ws://127.0.0.1:9/x", True),
        ("data:image/png;base64,AAAA", True),
        ("blob:http://127.0.0.1:8000/4a1b", True),
        ("about:blank", True),
        ("https://cdn.redoc.ly/redoc/logo-mini.svg", False),
        ("http://127.0.0.1.example.com/", False),
        ("http://10.0.0.1/", False),
        ("https://fonts.googleapis.com/css", False),
        ("ftp://127.0.0.1/", False),
    ],
)
def test_only_this_machine_is_local(url: str, local: bool) -> None:
    assert is_local(url) is local


LOGGED_401 = (
    "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    " [http://127.0.0.1:4321/v1/jobs?limit=20]"
)


def test_failed_fetch_names_one_status_and_one_path() -> None:
    assert failed_fetch(401, "/v1/jobs").search(LOGGED_401)
    assert not failed_fetch(422, "/v1/jobs").search(LOGGED_401)
    assert not failed_fetch(401, "/v1/job").search(LOGGED_401)
    assert not failed_fetch(401, "/v1/jobs").search(LOGGED_401.replace("/v1/jobs", "/v1/jobs/x"))
    assert not failed_fetch(401, "/v1/jobs").search(LOGGED_401.replace("401", "4010"))


def test_the_guard_lists_what_the_teardown_fails_on() -> None:
    guard = PageGuard(
        external=["GET https://example.com/"],
        console_errors=[LOGGED_401, "Uncaught TypeError [x.js]"],
        page_errors=["TypeError: boom"],
    )
    guard.on_csp_violation("script-src-elem refused inline at http://127.0.0.1:4321/:1")
    guard.expect_console_error(failed_fetch(401, "/v1/jobs"))
    guard.expect_console_error(failed_fetch(422, "/v1/jobs"))
    assert guard.problems() == [
        "request left localhost (aborted): GET https://example.com/",
        "console error: Uncaught TypeError [x.js]",
        "page error: TypeError: boom",
        "CSP violation: script-src-elem refused inline at http://127.0.0.1:4321/:1",
        f"expected console error never logged: /{failed_fetch(422, '/v1/jobs').pattern}/",
    ]
    with pytest.raises(AssertionError, match="the browser saw"):
        guard.check()
    # started over: the 401's expectation was met, the 422's still is not (a CSP violation
    # cannot be declared: the only way past one is a page that breaks no policy)
    assert guard.problems() == [
        f"expected console error never logged: /{failed_fetch(422, '/v1/jobs').pattern}/"
    ]
    guard.console_errors.append(LOGGED_401.replace("401 (Unauthorized)", "422 (Unprocessable)"))
    guard.check()


class FakePage:
    def screenshot(self, path: str) -> bytes:
        Path(path).write_bytes(b"png")
        return b"png"


@pytest.mark.parametrize("update", ["", "1"])
def test_screenshots_go_to_docs_img_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update: str
) -> None:
    monkeypatch.setenv("CURVEGAN_UPDATE_SCREENSHOTS", update)
    docs = tmp_path / "docs" / "img"
    path = save_screenshot(FakePage(), "dashboard", tmp_path, docs)  # type: ignore[arg-type]
    assert path == tmp_path / "dashboard.png" and path.read_bytes() == b"png"
    assert (docs / "dashboard.png").exists() is (update == "1")
    with pytest.raises(ValueError, match="letters, digits"):
        save_screenshot(FakePage(), "../x", tmp_path, docs)  # type: ignore[arg-type]
