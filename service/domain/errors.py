"""Domain errors: each has a stable machine-readable ``code``; the HTTP edge maps codes to
statuses (service/api/errors.py), so nothing below it knows of HTTP."""

from __future__ import annotations


class DomainError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    """A request value outside what is allowed; the message names the field and the range."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class InvalidCheckpoint(DomainError):
    code = "invalid_checkpoint"


class NonFiniteOutput(DomainError):
    """A generator's curves came out inf or NaN (weights or latents past float32): refused,
    never sent as JSON nulls or drawn as a broken figure."""

    code = "non_finite_output"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"


class TooManyRequests(DomainError):
    """Over a limit that frees itself: the answer says when to retry (``retry_after`` s)."""

    code = "too_many_requests"
    retry_after = 5


class TooManyJobs(TooManyRequests):
    code = "too_many_jobs"


class TooManyStreams(TooManyRequests):
    code = "too_many_streams"


class TooManyFigures(TooManyRequests):
    code = "too_many_figures"
    retry_after = 2  # a figure takes well under a second to draw


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    """A request refused whoever sends it: a write from a page of another site."""

    code = "forbidden"


class RequestTimeout(DomainError):
    """The body did not arrive in time (CURVEGAN_BODY_TIMEOUT_SECONDS)."""

    code = "request_timeout"


class InsufficientStorage(DomainError):
    """The disk (of the files or of the database) is full: nothing was recorded."""

    code = "insufficient_storage"
