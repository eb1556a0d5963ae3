"""How a /v1 request's body comes in: the API key and the request's site are checked before a
byte of it is read, its size is bounded (by Content-Length at once, and while a chunked body
streams) and so is the time it takes to arrive, a route reads only the content types it
documents, and JSON is parsed in a worker thread, so no request can make the server read, hold
or parse a body it would refuse."""

from __future__ import annotations

import asyncio
import email.message
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain import NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from ..domain.errors import Forbidden, RequestTimeout
from .errors import domain_response

PROTECTED_PREFIX = "/v1"
_DIGITS = re.compile(r"[0-9]{1,20}")
# Methods that change state: a page of another site may send them without a preflight (a
# form, or fetch in no-cors mode), so they are refused when they come from one.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def cross_site(headers: Headers, allowed_origins: frozenset[str]) -> str | None:
    """Why a request comes from a page of another site, or None when it does not (or when no
    browser sent it: scripts send neither header).

    A browser says where a request comes from in Sec-Fetch-Site (every current one), and in
    Origin on a cross-origin write. Sec-Fetch-Site is read first: the browser computes it
    from the page's URL, so it stays right behind a proxy that rewrites Host. Origin is
    compared with Host only where Sec-Fetch-Site is missing (older browsers)."""
    origin = headers.get("origin")
    if origin is not None and origin in allowed_origins:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site: {site[:40]}"
    if origin is None:
        return None
    if origin == "null" or urlsplit(origin).netloc != headers.get("host"):
        return f"Origin: {origin[:100]}"
    return None


def forbidden(why: str) -> Forbidden:
    return Forbidden(
        f"a write from a page of another site is refused ({why}); the dashboard on this "
        "server, scripts and the client are not refused. A page of yours served elsewhere "
        "can be allowed with CURVEGAN_ALLOWED_ORIGINS",
        field="headers.origin",
    )


@dataclass(frozen=True)
class BodyLimit:
    bytes: int
    setting: str  # named in the 413, so the operator knows what to raise


class RequestGate:
    """ASGI middleware in front of every /v1 route. It answers 401 for a missing or wrong key,
    403 for a write from a page of another site (whether or not a key is set: a page cannot
    send the key without a preflight, which this server does not answer) and 413 for a
    declared Content-Length over the limit, without reading the body. A body without a
    length is counted as it arrives and refused once it passes the limit, and one still
    arriving ``body_timeout`` seconds after the request came is refused too (the route
    reading it gets PayloadTooLarge or RequestTimeout, which errors.py answers as 413 or
    408): a client sending a byte a minute holds no connection for long."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        default_limit: BodyLimit,
        route_limits: dict[tuple[str, str], BodyLimit],
        body_timeout: float,
        allowed_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.default_limit = default_limit
        self.route_limits = route_limits  # (method, path) -> its own limit (raw uploads)
        self.body_timeout = body_timeout
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_key and not key_matches(headers.get("authorization"), self.api_key):
            await domain_response(unauthorized())(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS:
            why = cross_site(headers, self.allowed_origins)
            if why is not None:
                await domain_response(forbidden(why))(scope, receive, send)
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
        complete = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout

        async def receive_bounded() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() waits for a disconnect: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the body took longer than {self.body_timeout:g} s to arrive "
                    f"({received} bytes came); CURVEGAN_BODY_TIMEOUT_SECONDS sets the limit",
                    field="body",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit.bytes:
                    raise PayloadTooLarge(
                        f"body exceeds the limit of {limit.bytes} bytes ({limit.setting})",
                        field="body",
                    )
            else:
                complete = True
            return message

        await self.app(scope, receive_bounded, send)


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


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_type()


def _is_json(content_type: str | None) -> bool:
    """FastAPI's own test for a JSON body (it parses nothing else as JSON)."""
    media = _media_type(content_type) or ""
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _sent_as(content_type: str | None) -> str:
    return f"as {content_type[:100]!r}" if content_type else "without a Content-Type"


class OffloadedJsonRoute(APIRoute):
    """A route that reads only the content types it documents. A JSON body is read (bounded
    by RequestGate) and parsed in a worker thread before FastAPI's handler runs, with orjson:
    a 10.5 MB sample request (100 000 rows of z) took json.loads 225 ms on the event loop,
    orjson 90 ms (orjson holds the GIL while it parses, so the loop still pauses; the gain is
    its speed). A raw body (an upload) must come as the type its OpenAPI requestBody declares,
    checked before it is read; a write that documents no body takes none. So a page of
    another site cannot slip a write through as text/plain, which a browser sends with no
    preflight."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is not None:
            return self._json_body(handler)
        raw_types = set(((self.openapi_extra or {}).get("requestBody") or {}).get("content") or {})
        if raw_types:
            return self._raw_body(handler, raw_types)
        if self.methods & UNSAFE_METHODS:
            return self._no_body(handler)
        return handler

    @staticmethod
    def _json_body(handler: Handler) -> Handler:
        async def parse_then_handle(request: Request) -> Response:
            body = await request.body()
            content_type = request.headers.get("content-type")
            if body and not _is_json(content_type):
                # FastAPI would hand the raw bytes to the model, whose 422 ("should be a valid
                # dictionary") hides the cause: curl's -d alone sends a form's content type.
                raise UnsupportedMediaType(
                    f"body sent {_sent_as(content_type)}; this route reads JSON: send "
                    "'Content-Type: application/json'",
                    field="headers.content-type",
                )
            if body and _is_json(content_type):
                # Starlette's Request.json() returns this cached value instead of parsing.
                request._json = await run_in_threadpool(parse_json, body)
            return await handler(request)

        return parse_then_handle

    @staticmethod
    def _raw_body(handler: Handler, types: set[str]) -> Handler:
        wanted = " or ".join(f"'Content-Type: {t}'" for t in sorted(types))

        async def check_type_then_handle(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if _media_type(content_type) not in types:
                raise UnsupportedMediaType(
                    f"body sent {_sent_as(content_type)}; this route reads the raw file: send "
                    f"{wanted} (curl: --data-binary @FILE -H 'Content-Type: {min(types)}')",
                    field="headers.content-type",
                )
            return await handler(request)

        return check_type_then_handle

    @staticmethod
    def _no_body(handler: Handler) -> Handler:
        async def refuse_a_body_then_handle(request: Request) -> Response:
            if await request.body():
                raise UnsupportedMediaType(
                    f"body sent {_sent_as(request.headers.get('content-type'))}; this route "
                    "takes no body: send none",
                    field="body",
                )
            return await handler(request)

        return refuse_a_body_then_handle
