"""The server URL a client is given: caught here when it cannot work, with the fix in the
message, rather than as "unreachable" (no scheme) or a bare 404 (``/v1`` twice)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import UsageError


def root_url(url: str) -> str:
    """``url`` if it names a server's root (``http://host:port``, optionally under a proxy's
    path prefix); else UsageError saying what to give instead."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # urlsplit reads "localhost:8000" as scheme "localhost", "127.0.0.1:8000" as a path
        guess = "http://" + url.split("://", 1)[-1].lstrip("/")
        raise UsageError(f"server URL {url!r} needs an http:// or https:// scheme: give {guess!r}")
    path = parts.path.rstrip("/")
    if path == "/v1" or path.endswith("/v1"):
        root = url.rstrip("/")[: -len("/v1")]
        raise UsageError(
            f"server URL {url!r} ends in /v1: give the server's root, {root!r}; "
            "the client adds /v1 itself"
        )
    return url
