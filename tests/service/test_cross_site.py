"""No simple cross-site write: a route reads only the content types it documents (an upload
only application/octet-stream, a write without a body none), and a write that a browser says
comes from a page of another site (Sec-Fetch-Site, else Origin against Host) is 403, key or
no key. Reads stay open; scripts, which send neither header, are not refused. In process;
tests/service/browser/test_cross_site.py makes the same writes from a real page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import AppClient
from tests.helpers import assert_error, tiny_checkpoint_bytes

OCTET = {"content-type": "application/octet-stream"}
JOB = {"config": {"steps": 10, "log_every": 5, "seed": 1}}


@pytest.fixture
def c(make_app_client: Callable[..., AppClient]) -> AppClient:
    return make_app_client(workers=False)


def _stored(c: AppClient) -> tuple[int, int]:
    return c.get("/v1/checkpoints").json()["total"], c.get("/v1/jobs").json()["total"]


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "text/plain;charset=UTF-8"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/json"},
        {},  # fetch() of an ArrayBuffer sends none, and needs no preflight either
    ],
    ids=["text", "text-utf8", "form", "multipart", "json", "none"],
)
def test_an_upload_must_be_octet_stream(c: AppClient, headers: dict[str, str]) -> None:
    r = c.post("/v1/checkpoints", content=tiny_checkpoint_bytes(), headers=headers)
    assert_error(
        r,
        415,
        "unsupported_media_type",
        field="headers.content-type",
        message_has=["Content-Type: application/octet-stream", "--data-binary"],
    )
    assert _stored(c) == (0, 0)


def test_octet_stream_with_parameters_is_an_upload(c: AppClient) -> None:
    headers = {"content-type": "Application/Octet-Stream; name=g.safetensors"}
    r = c.post("/v1/checkpoints", content=tiny_checkpoint_bytes(), headers=headers)
    assert r.status_code == 201, r.text


def test_a_write_that_takes_no_body_refuses_one(c: AppClient) -> None:
    job = c.post("/v1/jobs", json=JOB).json()
    r = c.post(
        f"/v1/jobs/{job['id']}/cancel", content=b"x=y", headers={"content-type": "text/plain"}
    )
    assert_error(r, 415, "unsupported_media_type", field="body", message_has="takes no body")
    assert c.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"
    # No body at all, or an empty one with a JSON type (some clients send it), is a cancel.
    r = c.post(f"/v1/jobs/{job['id']}/cancel", headers={"content-type": "application/json"})
    assert r.status_code == 202 and r.json()["state"] == "cancelled", r.text


CROSS_SITE = [
    {"sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "same-site"},  # another port or subdomain: another origin all the same
    {"sec-fetch-site": "cross-site", "origin": "http://test"},  # the browser's word first
    {"origin": "http://evil.example"},  # a browser without Sec-Fetch-Site
    {"origin": "http://test:8001"},
    {"origin": "null"},  # a sandboxed frame or a file:// page
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_write_from_another_site_is_403_and_changes_nothing(
    c: AppClient, headers: dict[str, str]
) -> None:
    job = c.post("/v1/jobs", json=JOB).json()
    writes = [
        ("POST", "/v1/jobs", {"json": JOB}),
        ("POST", "/v1/checkpoints", {"content": tiny_checkpoint_bytes(), "headers": OCTET}),
        ("POST", f"/v1/jobs/{job['id']}/cancel", {}),
        ("DELETE", f"/v1/jobs/{job['id']}", {}),
        ("POST", "/v1/sweeps", {"json": {"base": JOB["config"], "vary": {"seed": [1, 2]}}}),
    ]
    for method, url, kw in writes:
        sent = {**kw.pop("headers", {}), **headers}
        r = c.request(method, url, headers=sent, **kw)
        assert_error(r, 403, "forbidden", message_has="CURVEGAN_ALLOWED_ORIGINS")
    assert _stored(c) == (0, 1)
    assert c.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"
    # Reads are not writes: another site's page cannot read the answer anyway.
    assert c.get("/v1/jobs", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a script: curl, the client, httpx
        {"sec-fetch-site": "same-origin", "origin": "http://test"},  # the dashboard
        {"sec-fetch-site": "none"},  # typed into the address bar
        {"origin": "http://test"},  # an older browser, same origin
    ],
    ids=["script", "dashboard", "user", "same-origin"],
)
def test_a_write_from_this_site_or_a_script_goes_through(
    c: AppClient, headers: dict[str, str]
) -> None:
    assert c.post("/v1/jobs", json=JOB, headers=headers).status_code == 202


def test_an_allowed_origin_may_write(make_app_client: Callable[..., AppClient]) -> None:
    c = make_app_client(workers=False, allowed_origins="https://curves.example.com/, http://b")
    for origin in ("https://curves.example.com", "http://b"):
        headers = {"origin": origin, "sec-fetch-site": "cross-site"}
        assert c.post("/v1/jobs", json=JOB, headers=headers).status_code == 202
    r = c.post("/v1/jobs", json=JOB, headers={"origin": "https://evil.example.com"})
    assert_error(r, 403, "forbidden")


def test_the_key_does_not_open_cross_site_writes(
    make_app_client: Callable[..., AppClient],
) -> None:
    c = make_app_client(workers=False, api_key="k")
    auth = {"authorization": "Bearer k"}
    r = c.post("/v1/jobs", json=JOB, headers={**auth, "sec-fetch-site": "cross-site"})
    assert_error(r, 403, "forbidden")
    assert c.post("/v1/jobs", json=JOB, headers=auth).status_code == 202
