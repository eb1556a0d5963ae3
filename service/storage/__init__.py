"""Checkpoint files: one small protocol, on a local disk or on any fsspec filesystem."""

from __future__ import annotations

from pathlib import Path

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from .base import CheckpointStorage, check_id
from .local import LocalStorage
from .remote import FsspecStorage

__all__ = ["CheckpointStorage", "FsspecStorage", "LocalStorage", "check_id", "make_storage"]


def make_storage(storage_url: str, files_dir: Path) -> CheckpointStorage:
    """The store that CURVEGAN_STORAGE_URL names: empty means ``files_dir``."""
    if not storage_url:
        return LocalStorage(files_dir)
    fs, root = url_to_fs(storage_url)
    if isinstance(fs, LocalFileSystem):
        # A plain path or file:// URL: the direct backend is faster, fsyncs its directory,
        # and lets the API send files with sendfile.
        return LocalStorage(Path(root))
    return FsspecStorage(storage_url)
