"""Telling a full disk from other failures, wherever it surfaces: ENOSPC from a file write,
SQLite's SQLITE_FULL or PostgreSQL's disk_full from the store."""

from __future__ import annotations

import errno

# sqlite3's result code for "database or disk is full".
_SQLITE_FULL = 13
# PostgreSQL's SQLSTATE for disk_full ("could not extend file").
_PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(exc, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if "database or disk is full" in str(exc):
            return True
        # SQLAlchemy keeps the driver's exception as .orig, not always as the cause.
        orig = getattr(exc, "orig", None)
        exc = orig if isinstance(orig, BaseException) else (exc.__cause__ or exc.__context__)
    return False


def without_paths(exc: BaseException) -> str:
    """``exc`` as ``Type: message`` without the file name an OSError carries: a job's error
    is shown to clients, who must never see where the server keeps its files."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"
