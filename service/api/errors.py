"""The one place where errors become HTTP responses: always JSON {error, message, field}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from ..domain import DomainError, TooManyRequests, Unauthorized
from ..domain.errors import InsufficientStorage, RequestTimeout
from ..storage.diskfull import is_disk_full

log = logging.getLogger("curvegan.errors")

# A value echoed in a message is cut to this many characters: a 5 MB string sent as a field
# must not come back whole in the error (nor fill the log).
MAX_ECHO_CHARS = 80
# Any message is cut to this: they name the field and range first, then the value received.
MAX_MESSAGE_CHARS = 500

_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if len(message) > MAX_MESSAGE_CHARS:  # a huge value quoted anywhere (service, engine)
        message = f"{message[:MAX_MESSAGE_CHARS]}... (cut from {len(message)} characters)"
    return JSONResponse(
        {"error": code, "message": message, "field": field}, status_code=status, headers=headers
    )


def short_repr(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """repr(value), cut to ``limit`` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


# The one table from a domain error's code to its HTTP status: the domain knows no HTTP.
STATUS: dict[str, int] = {
    "not_found": 404,
    "conflict": 409,
    "validation_error": 422,
    "invalid_checkpoint": 422,
    "non_finite_output": 422,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "too_many_requests": 429,
    "too_many_jobs": 429,
    "too_many_streams": 429,
    "too_many_figures": 429,
    "unauthorized": 401,
    "forbidden": 403,
    "request_timeout": 408,
    "insufficient_storage": 507,
    "internal_error": 500,
}


def domain_response(exc: DomainError) -> JSONResponse:
    headers = None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, RequestTimeout):
        # The rest of the body may still trickle in: the connection ends with the answer.
        headers = {"Connection": "close"}
    return error_response(STATUS[exc.code], exc.code, exc.message, exc.field, headers)


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    """A pydantic error as (dotted field, "field: what is wrong")."""
    loc = [str(p) for p in err.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        where, loc = loc[0], loc[1:]
    else:
        where = "body"
    field = ".".join(loc) or where
    kind = err.get("type", "")
    if kind == "json_invalid":
        return "body", f"body: is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
    if kind == "missing":
        return field, f"{field}: is required"
    if kind == "extra_forbidden":
        return field, f"{field}: is not a known field"
    ctx = err.get("ctx") or {}
    bounds = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    limits = [f"{op} {ctx[k]}" for k, op in bounds.items() if k in ctx]
    suffix = f" (allowed: {', '.join(limits)})" if limits else ""
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) else f", got {short_repr(got)}"
    return field, f"{field}: {err.get('msg', 'invalid value')}{suffix}{shown}"


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only the first
    route that matched the path (GET /v1/jobs/{id} hid DELETE /v1/jobs/{id})."""
    routes: list[BaseRoute] = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return domain_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        described = [_describe(e) for e in exc.errors()] or [("body", "body: invalid request")]
        field, message = described[0]
        if len(described) > 1:
            message += (
                f" (and {len(described) - 1} more: " + "; ".join(m for _, m in described[1:4]) + ")"
            )
        return error_response(422, "validation_error", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error; see the server log")

    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        """A full disk, wherever a write met it (a file, the database), is the client's
        507, not a 500: it can free space or retry later. The rest stays unexpected."""
        if not is_disk_full(exc):
            return await _unexpected(request, exc)
        log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
        full = InsufficientStorage(
            "insufficient storage: the server's disk is full, so nothing was recorded; "
            "retry once space is freed"
        )
        return domain_response(full)

    for kind in (OSError, DBAPIError):
        app.add_exception_handler(kind, _storage)
