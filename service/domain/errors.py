"""Domain errors: raised anywhere in the service, turned into HTTP responses in errors.py."""

from __future__ import annotations


class DomainError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class Invalid(DomainError):
    """A request value outside what is allowed; the message names the field and the range."""

    status, code = 422, "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class InvalidCheckpoint(DomainError):
    status, code = 422, "invalid_checkpoint"


class PayloadTooLarge(DomainError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(DomainError):
    status, code = 415, "unsupported_media_type"


class TooManyRequests(DomainError):
    """Over a limit that frees itself: the answer says when to retry (Retry-After)."""

    status, code = 429, "too_many_requests"
    retry_after = 5


class TooManyJobs(TooManyRequests):
    code = "too_many_jobs"


class TooManyStreams(TooManyRequests):
    code = "too_many_streams"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class InsufficientStorage(DomainError):
    """The disk (of the files or of the database) is full: nothing was recorded."""

    status, code = 507, "insufficient_storage"
