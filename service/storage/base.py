"""What every checkpoint store offers, so the service never depends on where the bytes live."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

# A writer's temporary file beside the checkpoints: ".<name>.<random>.tmp", dot-named so that
# no listing of checkpoints takes it for one.
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"

# An id becomes part of a file name or object key: nothing in it may leave the root.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

SUFFIX = ".safetensors"


def check_id(checkpoint_id: str) -> str:
    """The id, unchanged, if it is safe as a file name; ValueError otherwise."""
    if not isinstance(checkpoint_id, str) or not _SAFE_ID.fullmatch(checkpoint_id):
        raise ValueError(f"invalid checkpoint id {checkpoint_id!r}")
    return checkpoint_id


def read_chunks(fh: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    """The rest of an open file in pieces; closes it when done or abandoned."""
    with fh:
        while chunk := fh.read(chunk_size):
            yield chunk


@runtime_checkable
class CheckpointStorage(Protocol):
    """One checkpoint file per id. Errors of the medium propagate as OSError."""

    def put(self, checkpoint_id: str, data: bytes) -> tuple[int, str]:
        """Stores the bytes so that readers see the old file or the new one, never a part;
        returns (size, sha256 hex)."""
        ...

    def read(self, checkpoint_id: str) -> bytes: ...

    def exists(self, checkpoint_id: str) -> bool: ...

    def delete(self, checkpoint_id: str) -> None:
        """Removes the file; a missing one is not an error."""
        ...

    def size(self, checkpoint_id: str) -> int: ...

    def iter_chunks(self, checkpoint_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The file in pieces, for streaming a download without holding it all in memory."""
        ...

    def open(self, checkpoint_id: str) -> tuple[IO[bytes], int]:
        """The file opened for reading, and its size from the open handle: whatever happens to
        the name afterwards (a delete), the handle reads the whole file. FileNotFoundError
        when there is none."""
        ...

    def free_bytes(self) -> int | None:
        """Room left for files; None where it cannot be known (an object store)."""
        ...

    def remove_stale(self, before: float) -> tuple[int, list[str]]:
        """Removes the temporary files of writers that died mid-write, those last touched
        before ``before`` (epoch seconds) only, so a live writer's file is never taken;
        returns how many it removed, and the ids of the finished files older than
        ``before`` (to compare with the records)."""
        ...

    def local_path(self, checkpoint_id: str) -> Path | None:
        """Where the file lies on this machine's disk, so it can be sent with sendfile;
        None where the store is remote."""
        ...

    def describe(self) -> str:
        """Where the files are, for logs."""
        ...
