"""Hostile requests: the key is checked before a body is read, bodies are bounded, odd values
are 422 naming the field (never 500, never echoed whole), and the OpenAPI document states the
limits the server enforces.

The body-size and key cases run against a real server on a real port over raw sockets, so
that "answered before the body was sent" is what the server did, not what a client library
chose to do; the validation and schema cases run in-process."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gan_engine import ConfigError, TrainConfig
from gan_engine.config import MAX_SEED
from service.api.app import create_app
from service.api.schemas.config import CONFIG_PROPERTIES
from service.settings import Settings
from tests.conftest import AppClient, asgi_call
from tests.helpers import Server, read_http_response

KEY = "hostile-test-key"
AUTH = {"authorization": f"Bearer {KEY}"}
BODY_LIMIT = 100_000
OCTET = "application/octet-stream"
BODY_TIMEOUT_S = 2.0
SERVER_ENV = {
    "CURVEGAN_API_KEY": KEY,
    "CURVEGAN_MAX_BODY_BYTES": str(BODY_LIMIT),
    "CURVEGAN_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_S),
}
# A socket read that never comes back is the old behaviour (the server waiting for a body it
# would refuse): it must fail the test, not hang it.
READ_TIMEOUT_S = 20.0


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/checkpoints"])
def test_a_body_sent_slowly_is_408_and_its_connection_closed(
    module_server: Server, path: str
) -> None:
    """The probe held a connection for as long as it trickled a body. The deadline counts
    from the request's start, so a byte every half second does not renew it."""
    content_type = "application/json" if path == "/v1/jobs" else OCTET
    with _open(module_server) as sock:
        sock.sendall(_head(path, {"Content-Type": content_type, "Content-Length": "1000", **AUTH}))
        sock.settimeout(0.5)
        answered = b""
        for _ in range(int(READ_TIMEOUT_S / 0.5)):
            sock.sendall(b" ")
            try:
                answered = sock.recv(65536)
                break
            except TimeoutError:
                continue
        assert answered, "no answer while the body trickled in"
        sock.settimeout(READ_TIMEOUT_S)
        head, _, body = answered.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answered
        assert b"\r\nconnection: close" in head.lower(), head
        while b"}" not in body:
            body += sock.recv(65536)
        error = json.loads(body)
        assert error["error"] == "request_timeout" and error["field"] == "body", error
        assert "CURVEGAN_BODY_TIMEOUT_SECONDS" in error["message"], error
        # The server does not wait for the rest of the body: it closes the connection.
        rest = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while chunk := sock.recv(65536):
                rest += chunk
        assert rest == b"", rest
    with module_server.client() as c:
        assert c.get("/healthz").status_code == 200


# ------------------------------------------------------------------ real server, raw sockets


def _open(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT_S)
    return sock


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one response the server sends (it is small)."""
    status, body = read_http_response(sock)
    return status, json.loads(body)


def test_a_large_body_without_the_key_is_401_before_it_is_sent(module_server: Server) -> None:
    """The probe: 54 MB to a sampling route without a key was read and parsed (+700 MB, the
    event loop blocked for seconds, /healthz stalled) before the 401."""
    with _open(module_server) as sock:
        declared = 54_000_000
        sock.sendall(
            _head(
                "/v1/checkpoints/ck-any/samples",
                {"Content-Type": "application/json", "Content-Length": str(declared)},
            )
        )
        sock.sendall(b'{"z": [' + b"[0.5, 0.5, 0.5, 0.5, 0.5], " * 40_000)  # ~1 MB of 54
        status, body = _response(sock)
        assert status == 401 and body["error"] == "unauthorized", body
        # Meanwhile the server answers others: nothing of the body was held or parsed.
        with module_server.client() as c:
            assert c.get("/healthz").status_code == 200


def test_headers_past_the_limit_are_431_and_the_connection_closed(module_server: Server) -> None:
    """uvicorn's httptools parser buffers a request's head without limit (100 MB of headers:
    +96 MB of server memory and no answer); the server's protocol cuts it at 64 KB."""
    with _open(module_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: ")
        status, body = 0, {}
        try:
            for _ in range(200):  # up to 200 x 64 KB: far past the limit
                sock.sendall(b"a" * 65_536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after answering, as it should
        status, body = _response(sock)
        assert status == 431 and body["field"] == "headers", body
        assert sock.recv(1) == b""  # closed
    # Ordinary heads still pass, on new connections and kept-alive ones.
    with module_server.client() as c:
        for _ in range(3):
            assert c.get("/healthz", headers={"X-Pad": "a" * 30_000}).status_code == 200


def test_a_chunked_body_without_the_key_is_401_before_it_ends(module_server: Server) -> None:
    with _open(module_server) as sock:
        sock.sendall(
            _head(
                "/v1/jobs",
                {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            )
        )
        piece = b'{"name": "' + b"x" * 60_000
        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        status, body = _response(sock)
        assert status == 401, body


def test_a_declared_length_over_the_limit_is_413_before_the_body(module_server: Server) -> None:
    with _open(module_server) as sock:
        sock.sendall(
            _head(
                "/v1/checkpoints/ck-any/samples",
                {
                    "Content-Type": "application/json",
                    "Content-Length": str(BODY_LIMIT + 1),
                    **AUTH,
                },
            )
        )
        status, body = _response(sock)
    assert status == 413 and body["error"] == "payload_too_large", body
    assert body["field"] == "body" and "CURVEGAN_MAX_BODY_BYTES" in body["message"], body
    assert str(BODY_LIMIT) in body["message"], body


def test_uploads_keep_their_own_limit(module_server: Server, mc: httpx.Client) -> None:
    """POST /v1/checkpoints takes raw bytes up to CURVEGAN_MAX_UPLOAD_BYTES (16 MiB here), not
    the JSON limit, and is refused the same way above it."""
    junk = b"\0" * (BODY_LIMIT * 2)
    r = mc.post("/v1/checkpoints", content=junk, headers={**AUTH, "content-type": OCTET})
    assert r.status_code == 422 and r.json()["error"] == "invalid_checkpoint", r.text
    with _open(module_server) as sock:
        sock.sendall(
            _head(
                "/v1/checkpoints",
                {"Content-Type": OCTET, "Content-Length": str(16 * 2**20 + 1), **AUTH},
            )
        )
        status, body = _response(sock)
    assert status == 413 and "CURVEGAN_MAX_UPLOAD_BYTES" in body["message"], body


def test_a_chunked_body_is_413_once_it_passes_the_limit(module_server: Server) -> None:
    with _open(module_server) as sock:
        sock.sendall(
            _head(
                "/v1/jobs",
                {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **AUTH},
            )
        )
        piece = b"x" * 30_000
        # Past the limit, but never ended: only a server counting as it reads answers now.
        for _ in range(BODY_LIMIT // len(piece) + 2):
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        status, body = _response(sock)
    assert status == 413 and "CURVEGAN_MAX_BODY_BYTES" in body["message"], body


def test_integral_floats_are_integers(mc: httpx.Client) -> None:
    """JSON has one number type: 8.0 is the integer 8 (JSON Schema, and generated clients,
    say so); TrainConfig refused it as "must be an integer"."""
    body = {"config": {"steps": 1.0, "hidden": 8.0, "lr_g": 1}, "preset": "tutorial"}
    r = mc.post("/v1/jobs", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    config = r.json()["config"]
    assert (config["steps"], config["hidden"], config["lr_g"]) == (1, 8, 1.0), config
    sweep = {"vary": {"hidden": [4.0, 5]}, "config": {"steps": 1.0}}
    r = mc.post("/v1/sweeps", json=sweep, headers=AUTH)
    assert r.status_code == 202, r.text


def test_a_body_within_the_limit_still_works(mc: httpx.Client) -> None:
    r = mc.post("/v1/jobs", json={"config": {"steps": 1}, "name": "x" * 200}, headers=AUTH)
    assert r.status_code == 202, r.text
    assert mc.post("/v1/jobs", json={}).status_code == 401


NUL_REQUESTS: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    # method, url, request keywords, status, field
    ("GET", "/v1/jobs/a%00b", {}, 404, None),
    ("GET", "/v1/jobs/%00/events", {}, 404, None),
    ("DELETE", "/v1/checkpoints/%00", {}, 404, None),
    ("GET", "/v1/sweeps/x%00", {}, 404, None),
    ("GET", "/v1/jobs?sweep_id=a%00b", {}, 422, "sweep_id"),
    ("GET", "/v1/checkpoints?job_id=a%00", {}, 422, "job_id"),
    ("POST", "/v1/jobs", {"json": {"name": "a\u0000b"}}, 422, "name"),
    ("POST", "/v1/jobs", {"json": {"resume_from": "ck\u0000"}}, 422, "resume_from"),
    ("POST", "/v1/sweeps", {"json": {"name": "\u0000", "vary": {"seed": [1]}}}, 422, "name"),
]


def test_nul_in_text_never_reaches_postgresql(
    make_app_client: Callable[..., AppClient], postgres_url: str
) -> None:
    """PostgreSQL refuses text holding NUL (U+0000): each of these was a 500 there. No id
    holds NUL (404); a name, filter or reference with one is 422 naming it. In process: the
    app and its store are what is tested."""
    c = make_app_client(database_url=postgres_url, workers=False)
    for method, url, kw, status, field in NUL_REQUESTS:
        r = c.request(method, url, **kw)
        assert r.status_code == status, (method, url, r.status_code, r.text)
        assert r.json()["field"] == field, (url, r.text)


# ----------------------------------------------------------------- in-process: validation


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("hostile-inproc")
    return Settings(data_dir=Path(data), max_concurrent_jobs=1, max_samples=1000)


Call = Callable[..., httpx.Response]


@pytest.fixture(scope="module")
def api(app_settings: Settings) -> Call:
    """``api(method, url, **kw)`` on the app without its lifespan: every case here is refused
    before a handler runs (no store, no workers needed)."""
    return asgi_call(create_app(app_settings))


def _error(r: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text[:500]}"
    body = r.json()
    assert set(body) == {"error", "message", "field"}, body
    return body


BIG = str(2**64)


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"/v1/jobs?offset={BIG}", "offset"),
        (f"/v1/sweeps?offset={BIG}", "offset"),
        (f"/v1/checkpoints?offset={BIG}", "offset"),
        (f"/v1/jobs/job-x/metrics?since_step={BIG}", "since_step"),
        (f"/v1/jobs/job-x/events?since_step={BIG}", "since_step"),
        (f"/v1/jobs?limit={BIG}", "limit"),
    ],
)
def test_integers_past_64_bits_are_422(api: Call, url: str, field: str) -> None:
    err = _error(api("GET", url))
    assert err["field"] == field and "<=" in err["message"], err


def test_a_405_lists_every_method_of_the_path(api: Call) -> None:
    """Starlette's Allow named only the first route matching the path (GET of /v1/jobs/{id},
    not its DELETE)."""
    for url, methods in [
        ("/v1/jobs/job-x", "DELETE, GET"),
        ("/v1/jobs", "GET, POST"),
        ("/v1/checkpoints", "GET, POST"),
    ]:
        r = api("OPTIONS", url)
        assert _error(r, 405)["error"] == "method_not_allowed"
        assert r.headers["allow"] == methods, (url, r.headers)


@pytest.mark.parametrize("value", ["٣".encode(), "²".encode("latin-1"), b"9" * 40, b"-1"])
def test_a_last_event_id_of_other_than_ascii_digits_is_422(api: Call, value: bytes) -> None:
    r = api("GET", "/v1/jobs/job-x/events", headers={"last-event-id": value})
    assert _error(r)["field"] == "last-event-id"


def test_a_lone_surrogate_is_422_not_500(api: Call) -> None:
    raw = b'{"name": "\\ud800"}'
    r = api("POST", "/v1/jobs", content=raw, headers={"content-type": "application/json"})
    err = _error(r)
    assert err["field"] == "body" and "surrogate" in err["message"], err


@pytest.mark.parametrize("value", [1e300, -1e39, 1e7])
def test_latents_past_float32_are_422_naming_the_number(api: Call, value: float) -> None:
    body = {"z": [[0.0] * 5, [0.0, 0.0, value, 0.0, 0.0]]}
    err = _error(api("POST", "/v1/checkpoints/ck-x/samples", json=body))
    assert err["field"] == "z.1.2" and "1000000" in err["message"], err


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"name": "x" * 5_000_000}, {}, "name"),
        ({"preset": "x" * 5_000_000}, {}, "preset"),
        ({"config": {"loss": "x" * 5_000_000}}, {}, "config.loss"),
        ({}, {"idempotency-key": "k" * 100_000}, "idempotency-key"),
    ],
)
def test_a_huge_value_is_never_echoed_whole(
    api: Call, body: dict[str, Any], headers: dict[str, str], field: str
) -> None:
    r = api("POST", "/v1/jobs", json=body, headers=headers)
    err = _error(r)
    assert err["field"] == field, err
    assert len(r.content) < 2_000, len(r.content)


DEEP = b"[" * 1020 + b"]" * 1020  # orjson's deepest (1024 levels in all)


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/v1/jobs", b'{"config": {"steps": %s}}' % DEEP, "config.steps"),
        ("/v1/jobs", b'{"config": {"betas": %s}}' % DEEP, "config.betas"),
        ("/v1/sweeps", b'{"vary": {"loss": [%s]}}' % DEEP, "vary.loss.0"),
        ("/v1/sweeps", b'{"members": [{"lr_g": %s}]}' % DEEP, "members.0.lr_g"),
    ],
)
def test_a_value_nested_a_thousand_deep_is_422(
    api: Call, url: str, body: bytes, field: str
) -> None:
    """Quoting it in the message (repr) and reading its numbers recursed past Python's
    limit: a 500."""
    r = api("POST", url, content=body, headers={"content-type": "application/json"})
    err = _error(r)
    assert err["field"] == field and "[[[" in err["message"], err


# ------------------------------------------------------------------- the OpenAPI document


@pytest.fixture(scope="module")
def doc(app_settings: Settings) -> dict[str, Any]:
    keyed = app_settings.model_copy(update={"api_key": KEY, "max_sweep_members": 7})
    return create_app(keyed).openapi()


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") != "null")


def test_openapi_states_the_sample_request_rules(doc: dict[str, Any]) -> None:
    sample = doc["components"]["schemas"]["SampleRequest"]
    assert {json.dumps(b["required"]) for b in sample["anyOf"]} == {'["n"]', '["z"]'}
    props = sample["properties"]
    assert _non_null(props["n"]) == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert _non_null(props["seed"])["maximum"] == MAX_SEED  # exactly, not 2**63 as a float
    z = _non_null(props["z"])
    assert (z["minItems"], z["maxItems"]) == (1, 1000)
    assert z["items"]["items"]["maximum"] == 1e6


def test_openapi_states_headers_bounds_and_auth(doc: dict[str, Any]) -> None:
    ops = [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]
    create = doc["paths"]["/v1/jobs"]["post"]
    key = next(p for p in create["parameters"] if p["name"] == "idempotency-key")
    # A header is absent or a string, never null (a client would send the text "null").
    assert (key["schema"]["type"], key["schema"]["minLength"], key["schema"]["maxLength"]) == (
        "string",
        1,
        200,
    )
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/JobCreate"
    )
    job = doc["components"]["schemas"]["JobCreate"]
    assert job["not"]["required"] == ["preset", "resume_from"], job
    members = _non_null(doc["components"]["schemas"]["SweepCreate"]["properties"]["members"])
    assert members["maxItems"] == 7
    for path, method, op in ops:
        for param in op.get("parameters", []):
            schema = _non_null(param["schema"])
            if schema.get("type") == "integer":
                assert "maximum" in schema, (path, method, param["name"])
        if op.get("parameters") or op.get("requestBody"):
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, (path, method)
        if path.startswith("/v1"):
            assert op["security"] == [{"bearer": []}] and "401" in op["responses"], (path, method)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def _edges(schema: dict[str, Any]) -> Iterator[tuple[Any, bool]]:
    """(value, allowed) pairs at the edges of one field's schema."""
    schema = _non_null(schema)
    if "enum" in schema:
        yield from ((v, True) for v in schema["enum"])
        yield "other", False
    elif schema.get("type") == "integer":
        lo, hi = schema["minimum"], schema["maximum"]
        yield from ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False))
    elif schema.get("type") == "number":
        for key, allowed in (("minimum", True), ("exclusiveMinimum", False)):
            if key in schema:
                yield schema[key], allowed
                yield schema[key] - 1e-9, False
        for key, allowed in (("maximum", True), ("exclusiveMaximum", False)):
            if key in schema:
                yield schema[key], allowed
                yield schema[key] + 1e-9, False


@pytest.mark.parametrize("name", sorted(set(CONFIG_PROPERTIES) - {"betas", "ema_warmup"}))
def test_the_config_schema_bounds_are_the_engines(name: str) -> None:
    """Each bound the OpenAPI document states for a config field is the one TrainConfig
    enforces: its edge values pass, one step past them fails, naming the field."""
    for value, allowed in _edges(CONFIG_PROPERTIES[name]):
        try:
            TrainConfig.from_dict({name: value})
        except ConfigError as exc:
            assert not allowed and exc.field == name, (name, value, exc)
        else:
            assert allowed, (name, value)
