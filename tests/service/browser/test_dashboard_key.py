"""The dashboard against a server with CURVEGAN_API_KEY: the page itself loads without the key,
asks for it once when /v1 answers 401 (a refused key asks again), keeps it in sessionStorage
and sends it as a header on every call, the event stream (read with fetch) and the checkpoint
download included: the key never goes into a URL. A key in UTF-8 goes as its bytes."""

from __future__ import annotations

from typing import Any

from tests.conftest import ServerPool
from tests.helpers import wait_for_state
from tests.service.browser.conftest import DEFAULT_BROWSER_SERVER_ENV, KeyedServer
from tests.service.browser.harness import failed_fetch
from tests.service.browser.test_dashboard import curves_drawn, in_band_share, points


def test_key_dialog_then_live_job_and_download(
    open_page: Any, keyed_browser_server: KeyedServer, tmp_path: Any
) -> None:
    server = keyed_browser_server
    requests: list[str] = []
    page = open_page(server.url)  # no key: the page has to ask for it
    page.on("request", lambda r: requests.append(r.url))
    guard = open_page.guard(page)
    guard.expect_console_error(failed_fetch(401, "/v1/jobs"))

    dialog = page.locator("#key-dialog")
    dialog.wait_for()
    page.fill("#key-input", "not-the-key")
    page.click("#key-submit")
    page.wait_for_selector("#key-reason:has-text('refused')")
    page.fill("#key-input", server.api_key)
    page.click("#key-submit")
    page.wait_for_selector("#view[data-view=jobs][data-loaded=true]")
    assert not dialog.is_visible()
    assert page.evaluate("sessionStorage.getItem('curvegan.apiKey')") == server.api_key
    # The header's button opens the dialog on purpose; cancelling keeps the key.
    page.click("#key-button")
    dialog.wait_for()
    page.click("#key-cancel")
    dialog.wait_for(state="hidden")
    assert page.evaluate("sessionStorage.getItem('curvegan.apiKey')") == server.api_key

    page.select_option("#f-preset", "fast")
    page.fill("#f-steps", "1500")
    page.fill("#f-log_every", "20")
    page.click("#job-submit")
    page.wait_for_url("**/#/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector("#view[data-stream=ended]", state="attached", timeout=60_000)
    assert page.get_attribute("#view", "data-state") == "succeeded"
    assert points(page) == 1500 // 20
    # The stream answered with the key: at least the last loaded row came again.
    assert int(page.get_attribute("#view", "data-frames") or 0) >= 1
    assert in_band_share(curves_drawn(page, "#job-figure")) >= 0.9
    assert not dialog.is_visible()  # asked once, not again for the stream

    with server.client() as client:
        ck_id = wait_for_state(client, job_id, {"succeeded"})["latest_checkpoint"]
        original = client.get(f"/v1/checkpoints/{ck_id}/file").content
    page.goto(f"{server.url}/#/checkpoints/{ck_id}")
    page.wait_for_selector("#view[data-drawn='200']")
    assert page.get_attribute("#ck-hist", "data-n") == "200"  # sampled with the key
    with page.expect_download() as download:
        page.click("#ck-download")
    saved = tmp_path / "ck.safetensors"
    download.value.save_as(saved)
    assert saved.read_bytes() == original

    # Cancel with the key, from the list's button.
    with server.client() as client:
        long_job = client.post("/v1/jobs", json={"config": {"steps": 1_000_000}}).json()["id"]
    page.goto(f"{server.url}/#/jobs")
    page.click(f"#jobs-table tr[data-job-id={long_job}] button[data-action=cancel]")
    page.wait_for_selector(f"#jobs-table tr[data-job-id={long_job}][data-state=cancelled]")

    assert not [u for u in requests if server.api_key in u], "the key went into a URL"
    assert any("/events?" in u for u in requests)


UTF8_KEY = "clé-🔑"


def test_a_utf8_key_is_sent_as_its_bytes(open_page: Any, server_pool: ServerPool) -> None:
    """fetch() refuses a header with a character above U+00FF: the page sends the key's UTF-8
    bytes, which a server whose CURVEGAN_API_KEY is that key accepts."""
    server = server_pool.get({**DEFAULT_BROWSER_SERVER_ENV, "CURVEGAN_API_KEY": UTF8_KEY})
    sent: list[str] = []  # Playwright reads header bytes as UTF-8
    page = open_page(server.url)
    page.on("request", lambda r: "/v1/" in r.url and sent.append(r.headers.get("authorization")))
    open_page.guard(page).expect_console_error(failed_fetch(401, "/v1/jobs"))
    page.locator("#key-dialog").wait_for()
    page.fill("#key-input", UTF8_KEY)
    page.click("#key-submit")
    # Either the list loads, or the dialog opens again saying the key was refused.
    page.wait_for_selector("#view[data-loaded=true], #key-reason:has-text('refused')")
    assert not page.locator("#key-dialog").is_visible(), "the server refused the UTF-8 key"
    assert page.get_attribute("#view", "data-view") == "jobs"
    assert page.evaluate("sessionStorage.getItem('curvegan.apiKey')") == UTF8_KEY
    assert f"Bearer {UTF8_KEY}" in sent, sent
