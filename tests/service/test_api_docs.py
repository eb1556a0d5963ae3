"""The API's own description over real HTTP: /docs and /redoc render from files the server
ships (no CDN), every operation has a short stable id, a client generated from /openapi.json
builds and works, and a JSON route tells a client that forgot the Content-Type what to send."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server

KEY = "docs-key"
# A key is set so the docs pages are shown to stay open while /v1 is closed.
SERVER_ENV = {"CURVEGAN_API_KEY": KEY}
AUTH = {"Authorization": f"Bearer {KEY}"}

# The operation ids generated clients name their functions after: a rename here is a
# breaking change for every such client, so it shows up in review.
OPERATION_IDS = {
    "checkpoints-delete",
    "checkpoints-figure",
    "checkpoints-file",
    "checkpoints-get",
    "checkpoints-list",
    "checkpoints-sample",
    "checkpoints-upload",
    "jobs-cancel",
    "jobs-checkpoint",
    "jobs-create",
    "jobs-delete",
    "jobs-event-stream",
    "jobs-figure",
    "jobs-get",
    "jobs-list",
    "jobs-metrics",
    "jobs-sample",
    "ops-healthz",
    "ops-metrics",
    "ops-readyz",
    "sweeps-cancel",
    "sweeps-create",
    "sweeps-delete",
    "sweeps-event-stream",
    "sweeps-get",
    "sweeps-list",
}


class _Refs(HTMLParser):
    """Every URL a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (tag, name) in {("script", "src"), ("link", "href"), ("img", "src")}:
                self.urls.append(value)


EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize(
    ("page", "needs"),
    [("/docs", {".js", ".css", ".png"}), ("/redoc", {".js"})],
)
def test_docs_pages_load_only_local_assets(mc: httpx.Client, page: str, needs: set[str]) -> None:
    r = mc.get(page)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    # No host but this server anywhere in the page: not in a tag, not in inline script.
    hosts = set(re.findall(r"https?://[^\s\"'/<>]+", r.text))
    assert hosts <= {httpx.URL(str(mc.base_url)).netloc.decode()}, hosts
    if page == "/docs":  # else Swagger UI posts the document to validator.swagger.io
        assert '"validatorUrl": null' in r.text, r.text
    refs = _Refs()
    refs.feed(r.text)
    assert refs.urls, r.text
    seen = set()
    for url in refs.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = mc.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        suffix = Path(url).suffix
        assert EXPECTED_TYPES[suffix] in asset.headers["content-type"], (url, asset.headers)
        assert len(asset.content) > (500 if suffix == ".png" else 50_000), (url, len(asset.content))
        seen.add(suffix)
    assert needs <= seen, refs.urls
    # The document the page reads is there too, without the key.
    assert mc.get("/openapi.json").status_code == 200


def test_every_operation_has_a_short_stable_id(mc: httpx.Client) -> None:
    doc = mc.get("/openapi.json").json()
    ids = [op.get("operationId") for item in doc["paths"].values() for op in item.values()]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z]+(-[a-z]+)+", i) for i in ids), ids
    assert len(ids) == len(set(ids)), sorted(ids)
    assert set(ids) == OPERATION_IDS, sorted(set(ids) ^ OPERATION_IDS)


def test_a_generated_client_builds_and_calls_the_server(
    module_server: Server, mc: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_bytes(mc.get("/openapi.json").content)
    package = tmp_path / "curvegan_generated"
    generator = Path(sys.executable).parent / "openapi-python-client"
    command = ["generate", "--path", str(spec), "--meta", "none", "--output-path", str(package)]
    done = subprocess.run(
        [str(generator), *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    client_mod = importlib.import_module("curvegan_generated.client")
    jobs_list = importlib.import_module("curvegan_generated.api.jobs.jobs_list")
    importlib.import_module("curvegan_generated.api.jobs.jobs_create")
    importlib.import_module("curvegan_generated.api.checkpoints.checkpoints_file")
    try:
        with client_mod.AuthenticatedClient(base_url=module_server.url, token=KEY) as client:
            answer = jobs_list.sync_detailed(client=client)
        assert answer.status_code == 200, answer.content
        assert answer.parsed is not None and answer.parsed.total == 0, answer.content
    finally:
        for name in [m for m in sys.modules if m.startswith("curvegan_generated")]:
            del sys.modules[name]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None]
)
def test_a_json_body_sent_as_another_type_gets_a_hint(
    mc: httpx.Client, content_type: str | None
) -> None:
    body = b'{"config": {"steps": 10}}'
    headers = AUTH if content_type is None else {**AUTH, "content-type": content_type}
    for path in ("/v1/jobs", "/v1/sweeps", "/v1/checkpoints/none/samples"):
        r = mc.post(path, content=body, headers=headers)
        assert r.status_code == 415, (path, r.text)
        error = r.json()
        assert error["error"] == "unsupported_media_type", error
        assert error["field"] == "headers.content-type", error
        assert "Content-Type: application/json" in error["message"], error
    # Nothing was queued; the same body as JSON is read.
    assert mc.get("/v1/jobs", headers=AUTH).json()["total"] == 0
    r = mc.post("/v1/checkpoints/none/samples", json={"n": 1}, headers=AUTH)
    assert r.status_code == 404, r.text


def test_docs_stay_open_while_v1_needs_the_key(mc: httpx.Client) -> None:
    assert mc.get("/v1/jobs").status_code == 401
    for path in ("/docs", "/redoc", "/openapi.json", "/static/vendor/redoc/redoc.standalone.js"):
        assert mc.get(path).status_code == 200, path
