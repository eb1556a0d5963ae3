"""How a /v1 request's body comes in: the API key is checked before a byte of it is read, its
size is bounded (by Content-Length at once, and while a chunked body streams), and JSON is
parsed in a worker thread, so no request can make the server read, hold or parse a body it
would refuse."""

from __future__ import annotations

import email.message
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain import NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from .errors import domain_response

PROTECTED_PREFIX = "/v1"
_DIGITS = re.compile(r"[0-9]{1,20}")


def key_matches(authorization: str | None, key: str) -> bool:
    """The key is compared as the bytes that came in, in constant time. ASGI servers decode a
    header as latin-1, so encoding it back gives those bytes; a key is set (and sent, by the
    client and the dashboard) as UTF-8, so "clé" is the bytes c3 a9 on both sides."""
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.encode("latin-1", "replace"), key.encode("utf-8")
    )


def unauthorized() -> Unauthorized:
    return Unauthorized("missing or wrong API key: send 'Authorization: Bearer <key>'")


@dataclass(frozen=True)
class BodyLimit:
    bytes: int
    setting: str  # named in the 413, so the operator knows what to raise


class RequestGate:
    """ASGI middleware in front of every /v1 route. It answers 401 for a missing or wrong key
    and 413 for a declared Content-Length over the limit without reading the body; a body
    without a length is counted as it arrives and refused once it passes the limit (the
    route reading it gets PayloadTooLarge, which errors.py answers as 413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        default_limit: BodyLimit,
        route_limits: dict[tuple[str, str], BodyLimit],
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.default_limit = default_limit
        self.route_limits = route_limits  # (method, path) -> its own limit (raw uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_key and not key_matches(headers.get("authorization"), self.api_key):
            await domain_response(unauthorized())(scope, receive, send)
            return
        if "\x00" in path:  # no id holds NUL (nor could PostgreSQL look one up)
            await domain_response(NotFound(f"nothing at {path!r}"))(scope, receive, send)
            return
        limit = self.route_limits.get((scope["method"], path.rstrip("/")), self.default_limit)
        declared = headers.get("content-length")
        if declared is not None and _DIGITS.fullmatch(declared) and int(declared) > limit.bytes:
            too_large = PayloadTooLarge(
                f"body is {declared} bytes; the limit is {limit.bytes} ({limit.setting})",
                field="body",
            )
            await domain_response(too_large)(scope, receive, send)
            return
        received = 0

        async def receive_bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    raise PayloadTooLarge(
                        f"body exceeds the limit of {limit.bytes} bytes ({limit.setting})",
                        field="body",
                    )
            return message

        await self.app(scope, receive_bounded, send)


def _is_json(content_type: str | None) -> bool:
    """FastAPI's own test for a JSON body (it parses nothing else as JSON)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_json(body: bytes) -> Any:
    """orjson, which also refuses what the store could not keep: lone surrogates ("\\ud800")
    and numbers beyond float64 (1e400); json.loads accepts both, and NaN."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None


class OffloadedJsonRoute(APIRoute):
    """A route whose JSON body is read (bounded by RequestGate) and parsed in a worker thread
    before FastAPI's handler runs, with orjson: a 10.5 MB sample request (100 000 rows of z)
    took json.loads 225 ms on the event loop, orjson 90 ms. orjson holds the GIL while it
    parses, so the loop still pauses for those 90 ms; the gain is orjson's speed, and a parse
    that is not the loop's own work (a future parser that releases the GIL would free it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def parse_then_handle(request: Request) -> Response:
            body = await request.body()
            content_type = request.headers.get("content-type")
            if body and not _is_json(content_type):
                # FastAPI would hand the raw bytes to the model, whose 422 ("should be a valid
                # dictionary") hides the cause: curl's -d alone sends a form's content type.
                sent = f"as {content_type[:100]!r}" if content_type else "without a Content-Type"
                raise UnsupportedMediaType(
                    f"body sent {sent}; this route reads JSON: send "
                    "'Content-Type: application/json'",
                    field="headers.content-type",
                )
            if body and _is_json(content_type):
                # Starlette's Request.json() returns this cached value instead of parsing.
                request._json = await run_in_threadpool(parse_json, body)
            return await handler(request)

        return parse_then_handle
