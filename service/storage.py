"""Checkpoint files, behind one small interface so another backend can replace the disk."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from gan_engine.checkpoint import atomic_write

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class LocalStorage:
    """One ``<id>.safetensors`` file per checkpoint under ``root``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, checkpoint_id: str) -> Path:
        # Ids are ours, but a path built from outside input must never escape root.
        if not _SAFE_ID.match(checkpoint_id):
            raise ValueError(f"invalid checkpoint id {checkpoint_id!r}")
        return self.root / f"{checkpoint_id}.safetensors"

    def put(self, checkpoint_id: str, data: bytes) -> tuple[int, str]:
        """Stores the bytes; returns (size, sha256 hex)."""
        atomic_write(self.path(checkpoint_id), data)
        return len(data), hashlib.sha256(data).hexdigest()

    def read(self, checkpoint_id: str) -> bytes:
        return self.path(checkpoint_id).read_bytes()

    def exists(self, checkpoint_id: str) -> bool:
        return self.path(checkpoint_id).is_file()

    def delete(self, checkpoint_id: str) -> None:
        self.path(checkpoint_id).unlink(missing_ok=True)
