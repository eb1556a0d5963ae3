"""A real page of another site tries the writes a browser sends without a preflight: fetch()
in no-cors mode with a text/plain body or an untyped ArrayBuffer (an upload, a job), and a
plain HTML form (a cancel). The page is served from http://localhost:<port>, the server is
at http://127.0.0.1:<port>: another site to Chromium, which says so in Sec-Fetch-Site.

Against a default server (no API key) every write is 403 and nothing is stored or changed.
Against one that allows that origin (CURVEGAN_ALLOWED_ORIGINS) the same writes pass the site
check and still store nothing: each route reads only the content type it documents (415)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerPool
from tests.helpers import Server, tiny_checkpoint_bytes
from tests.service.browser.conftest import DEFAULT_BROWSER_SERVER_ENV
from tests.service.browser.harness import guarded_context

LONG_JOB = {"config": {"steps": 1_000_000, "log_every": 1000, "checkpoint_every": 0, "seed": 1}}

PAGE = b"""<!doctype html><meta charset="utf-8"><title>another site</title>
<form id="cancel" method="POST" enctype="text/plain"><input name="x" value="y"></form>
<script>
// Each write as a page may send it with no preflight. The answers are opaque to the page:
// the test reads them from the network.
window.attack = async (target, upload, jobBody) => {
  const opts = (body, type) => ({method: "POST", mode: "no-cors", body,
                                 headers: type ? {"Content-Type": type} : {}});
  await fetch(target + "/v1/checkpoints", opts(new Blob([upload]), "text/plain"));
  await fetch(target + "/v1/checkpoints", opts(upload.buffer, null));
  await fetch(target + "/v1/jobs", opts(jobBody, "text/plain"));
};
</script>"""


@pytest.fixture(scope="module")
def another_site() -> Iterator[str]:
    """http://localhost:<port>, serving PAGE at /: the attacker's origin."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()


def _attack(browser: Any, site: str, server: Server) -> dict[str, list[int]]:
    """Runs the page's writes against ``server`` and submits its form to cancel a running
    job; returns the statuses the server answered, by "METHOD path"."""
    with server.client() as c:
        job = c.post("/v1/jobs", json=LONG_JOB).json()
    context, _ = guarded_context(browser, site)
    answered: dict[str, list[int]] = {}

    def record(response: Any) -> None:
        if response.url.startswith(server.url):
            key = f"{response.request.method} {response.url[len(server.url) :]}"
            answered.setdefault(key, []).append(response.status)

    try:
        page = context.new_page()
        page.on("response", record)
        page.goto(site)
        page.evaluate(
            "([t, u, j]) => window.attack(t, new Uint8Array(u), j)",
            [server.url, list(tiny_checkpoint_bytes()), '{"config": {"steps": 10}}'],
        )
        cancel = f"{server.url}/v1/jobs/{job['id']}/cancel"
        page.eval_on_selector("#cancel", "(f, url) => f.setAttribute('action', url)", cancel)
        with page.expect_response(cancel):
            page.eval_on_selector("#cancel", "f => f.submit()")
    finally:
        context.close()
    with server.client() as c:
        assert c.get(f"/v1/jobs/{job['id']}").json()["state"] in ("queued", "running")
        uploaded = [ck for ck in c.get("/v1/checkpoints").json()["items"] if not ck["job_id"]]
        assert uploaded == [], "the page uploaded a checkpoint"
        assert c.get("/v1/jobs").json()["total"] == 1, "the page's job was created"
        assert c.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    return answered


def test_another_sites_writes_are_refused(
    browser: Any, another_site: str, server_pool: ServerPool
) -> None:
    answered = _attack(browser, another_site, _fresh(server_pool))
    assert answered == {
        "POST /v1/checkpoints": [403, 403],
        "POST /v1/jobs": [403],
        f"POST {_cancel_path(answered)}": [403],
    }, answered


def test_an_allowed_sites_writes_still_need_their_content_type(
    browser: Any, another_site: str, server_pool: ServerPool
) -> None:
    answered = _attack(browser, another_site, _fresh(server_pool, another_site))
    assert answered == {
        "POST /v1/checkpoints": [415, 415],
        "POST /v1/jobs": [415],
        f"POST {_cancel_path(answered)}": [415],
    }, answered


def _cancel_path(answered: dict[str, list[int]]) -> str:
    return next(k for k in answered if k.endswith("/cancel")).split(" ", 1)[1]


def _fresh(server_pool: ServerPool, allowed: str = "") -> Server:
    """A pooled server no other module asks for (none sets CURVEGAN_ALLOWED_ORIGINS), so the
    totals read after the attack count only what the page did."""
    env = {**DEFAULT_BROWSER_SERVER_ENV, "CURVEGAN_ALLOWED_ORIGINS": allowed}
    return server_pool.get(env)
