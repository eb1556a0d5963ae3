"""Security headers on every response: pages, the API, errors from the gate and the routes."""

from __future__ import annotations

import pytest

from service.api.headers import SECURITY_HEADERS
from tests.conftest import AppClient


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/docs", 200),
        ("GET", "/healthz", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/v1/jobs", 200),
        ("GET", "/v1/jobs/job_missing", 404),
        ("POST", "/v1/jobs", 422),
        ("GET", "/nowhere", 404),
    ],
)
def test_every_response_carries_the_security_headers(
    app_client: AppClient, method: str, path: str, status: int
) -> None:
    kw = {"json": {"config": {"lr_g": 2}}} if method == "POST" else {}
    r = app_client.request(method, path, **kw)
    assert r.status_code == status, r.text
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get_list(name) == [value], (name, r.headers)
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
