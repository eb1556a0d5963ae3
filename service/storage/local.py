"""Checkpoint files on a local (or mounted) disk."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from gan_engine.checkpoint import atomic_write

from .base import SUFFIX, TEMP_PREFIX, TEMP_SUFFIX, check_id, read_chunks


class LocalStorage:
    """One ``<id>.safetensors`` file per checkpoint under ``root``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, checkpoint_id: str) -> Path:
        return self.root / f"{check_id(checkpoint_id)}{SUFFIX}"

    def put(self, checkpoint_id: str, data: bytes) -> tuple[int, str]:
        atomic_write(self.path(checkpoint_id), data)
        return len(data), hashlib.sha256(data).hexdigest()

    def read(self, checkpoint_id: str) -> bytes:
        return self.path(checkpoint_id).read_bytes()

    def exists(self, checkpoint_id: str) -> bool:
        return self.path(checkpoint_id).is_file()

    def delete(self, checkpoint_id: str) -> None:
        self.path(checkpoint_id).unlink(missing_ok=True)

    def size(self, checkpoint_id: str) -> int:
        return self.path(checkpoint_id).stat().st_size

    def iter_chunks(self, checkpoint_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        # Opened now, not on the first next(): a bad id or a missing file fails at the call,
        # and a file replaced later is still streamed whole from the inode opened here.
        fh = self.path(checkpoint_id).open("rb")
        return read_chunks(fh, chunk_size)

    def open(self, checkpoint_id: str) -> tuple[IO[bytes], int]:
        fh = self.path(checkpoint_id).open("rb")
        return fh, os.fstat(fh.fileno()).st_size

    def free_bytes(self) -> int | None:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def remove_stale(self, before: float) -> tuple[int, list[str]]:
        removed, old = 0, []
        for entry in os.scandir(self.root):
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:  # renamed or removed meanwhile: a live writer's
                continue
            if mtime >= before or not entry.is_file():
                continue
            if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
            elif entry.name.endswith(SUFFIX):
                old.append(entry.name[: -len(SUFFIX)])
        return removed, old

    def local_path(self, checkpoint_id: str) -> Path | None:
        return self.path(checkpoint_id)

    def describe(self) -> str:
        return f"local:{self.root}"
