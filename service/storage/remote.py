"""Checkpoint files on any fsspec filesystem, so machines that share no disk share checkpoints."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from .base import SUFFIX, TEMP_PREFIX, TEMP_SUFFIX, check_id, read_chunks


class FsspecStorage:
    """One ``<id>.safetensors`` object per checkpoint under a URL such as ``s3://bucket/prefix``,
    ``file:///mnt/shared/curvegan`` or ``memory://tests``."""

    def __init__(self, url: str) -> None:
        self.url = url
        fs, root = url_to_fs(url)
        self.fs: AbstractFileSystem = fs
        self.root: str = root.rstrip("/")
        # Only a real filesystem renames atomically; on an object store a rename is a copy,
        # while a single put already replaces the object whole.
        self._renames = isinstance(fs, LocalFileSystem)
        if self._renames:
            fs.makedirs(self.root or "/", exist_ok=True)

    def _key(self, checkpoint_id: str) -> str:
        return f"{self.root}/{check_id(checkpoint_id)}{SUFFIX}"

    def put(self, checkpoint_id: str, data: bytes) -> tuple[int, str]:
        key = self._key(checkpoint_id)
        if self._renames:
            self._put_by_rename(checkpoint_id, key, data)
        else:
            self.fs.pipe_file(key, data)
        return len(data), hashlib.sha256(data).hexdigest()

    def _put_by_rename(self, checkpoint_id: str, key: str, data: bytes) -> None:
        # In the same directory, so the rename never crosses filesystems; dot-named so that
        # a listing of checkpoints passes it by, and unique so concurrent puts never collide.
        tmp = f"{self.root}/.{checkpoint_id}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                # The data must be on disk before the rename is, or a crash (or an NFS
                # client elsewhere) could see the new name on an empty file.
                os.fsync(fh.fileno())
            self.fs.mv(tmp, key)
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.rm_file(tmp)
            raise

    def read(self, checkpoint_id: str) -> bytes:
        return self.fs.cat_file(self._key(checkpoint_id))

    def exists(self, checkpoint_id: str) -> bool:
        return self.fs.isfile(self._key(checkpoint_id))

    def delete(self, checkpoint_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._key(checkpoint_id))

    def size(self, checkpoint_id: str) -> int:
        return int(self.fs.size(self._key(checkpoint_id)))

    def iter_chunks(self, checkpoint_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        # Opened now, not on the first next(): a bad id or a missing file fails at the call.
        return read_chunks(self.fs.open(self._key(checkpoint_id), "rb"), chunk_size)

    def open(self, checkpoint_id: str) -> tuple[IO[bytes], int]:
        fh = self.fs.open(self._key(checkpoint_id), "rb")
        return fh, int(fh.size)

    def free_bytes(self) -> int | None:
        if not self._renames:
            return None
        st = os.statvfs(self.root or "/")
        return st.f_bavail * st.f_frsize

    def remove_stale(self, before: float) -> tuple[int, list[str]]:
        removed, old = 0, []
        for info in self.fs.ls(self.root or "/", detail=True):
            name = str(info["name"]).rsplit("/", 1)[-1]
            when = _modified(info)
            if info.get("type") != "file" or when is None or when >= before:
                continue
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(info["name"])
                    removed += 1
            elif name.endswith(SUFFIX):
                old.append(name[: -len(SUFFIX)])
        return removed, old

    def local_path(self, checkpoint_id: str) -> Path | None:
        key = self._key(checkpoint_id)  # checks the id whatever the answer
        return Path(key) if self._renames else None

    def describe(self) -> str:
        return str(self.fs.unstrip_protocol(self.root or "/"))


def _modified(info: dict[str, Any]) -> float | None:
    """When an fsspec listing entry was last written, in epoch seconds: each filesystem names
    it differently (local ``mtime``, S3 ``LastModified``, memory ``created``)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return None
