"""The client's exceptions. Every one carries the server's message when there was one.

CurveganError                 base: catch this for "anything the client raises"
├── UsageError                bad arguments, found before any request was sent (a ValueError too)
├── ApiError                  the server answered with an error (.status, .message, .code, .field)
│   ├── AuthError             401/403: missing or wrong API key
│   ├── NotFoundError         404: unknown job, checkpoint or sweep
│   ├── ConflictError         409: e.g. cancelling a finished job or sweep
│   ├── PayloadTooLargeError  413: upload over the server's limit
│   ├── ValidationError       422: names the field and the allowed range
│   ├── NonFiniteOutputError  422 non_finite_output: the generator's curves came out inf/NaN
│   │                         (its weights, or the latents sent, overflow float32): no sample
│   └── ServerError           5xx (after retries, for idempotent calls)
├── UnavailableError          server unreachable, or 429/503 after all retries; an event stream
│                             that cannot be opened, goes silent, or keeps dropping when resumed
└── JobFailedError            wait(): the job ended failed (its error is in .job.error)

TimeoutError (built-in)       wait(timeout=...), wait_sweep(timeout=...), iter_events /
                              iter_sweep_events(timeout=...): time ran out; the job (or sweep)
                              is still going, nothing went wrong.

wait_sweep() returns a sweep whose members failed; it does not raise.
"""

from __future__ import annotations

from typing import Any


class CurveganError(Exception):
    """Base class of everything the client raises."""


class UsageError(CurveganError, ValueError):
    """An argument is invalid; raised before any request is made."""


class ApiError(CurveganError):
    def __init__(
        self, status: int, message: str, *, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.code = code
        self.field = field


class AuthError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class PayloadTooLargeError(ApiError):
    pass


class ValidationError(ApiError):
    pass


class NonFiniteOutputError(ApiError):
    """The server refused to send curves holding inf or NaN; not a usage error (the checkpoint
    may be at fault, not the arguments), so the CLI exits 1, not 2."""


class ServerError(ApiError):
    pass


class UnavailableError(CurveganError):
    """The server could not be reached, or kept answering 429/503."""


class JobFailedError(CurveganError):
    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} ended {job.state}: {job.error or 'no error recorded'}")
        self.job = job


_BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
}
# Codes whose exception is more precise than their status's.
_BY_CODE: dict[str, type[ApiError]] = {"non_finite_output": NonFiniteOutputError}


def error_for(status: int, body: Any) -> ApiError:
    """The exception for an error response; the body is the service's {error, message, field}."""
    message, code, field = f"HTTP {status}", None, None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or message)
        code, field = body.get("error"), body.get("field")
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    cls = cls or _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, message, code=code, field=field)
