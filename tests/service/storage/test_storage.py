"""Both checkpoint backends pass the same tests: a store is a store, wherever the bytes live."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

from service.storage import CheckpointStorage, FsspecStorage, LocalStorage, make_storage


@dataclass
class Backend:
    storage: CheckpointStorage
    names: Callable[[], list[str]]  # every entry under the root, temp files included
    is_file_based: bool


def _local(tmp_path: Path) -> Iterator[Backend]:
    root = tmp_path / "files"
    yield Backend(LocalStorage(root), lambda: sorted(os.listdir(root)), True)


def _fsspec_file(tmp_path: Path) -> Iterator[Backend]:
    root = tmp_path / "shared"
    storage = FsspecStorage(root.as_uri())
    yield Backend(storage, lambda: sorted(os.listdir(root)), True)


def _memory(tmp_path: Path) -> Iterator[Backend]:
    # The memory filesystem is one global store: a unique root keeps tests apart.
    name = f"curvegan-test-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    storage = FsspecStorage(f"memory://{name}")

    def names() -> list[str]:
        if not fs.exists(f"/{name}"):
            return []
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"/{name}", detail=False))

    yield Backend(storage, names, False)
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


BACKENDS = {"local": _local, "fsspec-file": _fsspec_file, "fsspec-memory": _memory}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from BACKENDS[request.param](tmp_path)


@pytest.fixture
def storage(backend: Backend) -> CheckpointStorage:
    return backend.storage


def test_satisfies_the_protocol(storage: CheckpointStorage) -> None:
    assert isinstance(storage, CheckpointStorage)
    assert storage.describe()


def test_round_trip(storage: CheckpointStorage) -> None:
    data = os.urandom(12345)
    assert not storage.exists("ck1")
    size, sha = storage.put("ck1", data)
    assert size == len(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert storage.exists("ck1")
    assert storage.read("ck1") == data
    assert storage.size("ck1") == len(data)

    storage.delete("ck1")
    assert not storage.exists("ck1")
    with pytest.raises(FileNotFoundError):
        storage.read("ck1")
    storage.delete("ck1")  # a second delete of a missing file is fine


def test_overwrite_replaces_the_bytes(storage: CheckpointStorage) -> None:
    storage.put("ck", b"first, and longer")
    storage.put("ck", b"second")
    assert storage.read("ck") == b"second"
    assert storage.size("ck") == len(b"second")


def test_empty_file(storage: CheckpointStorage) -> None:
    assert storage.put("empty", b"") == (0, hashlib.sha256(b"").hexdigest())
    assert storage.read("empty") == b""
    assert b"".join(storage.iter_chunks("empty")) == b""


@pytest.mark.parametrize("chunk_size", [1, 1000, 4096, 1 << 20])
def test_iter_chunks_reassembles_the_bytes(storage: CheckpointStorage, chunk_size: int) -> None:
    data = os.urandom(10_000)
    storage.put("ck", data)
    chunks = list(storage.iter_chunks("ck", chunk_size=chunk_size))
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= chunk_size for c in chunks)


def test_missing_file_fails_when_asked_not_later(storage: CheckpointStorage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.iter_chunks("nope")
    with pytest.raises(FileNotFoundError):
        storage.size("nope")


def test_local_path(backend: Backend) -> None:
    storage = backend.storage
    storage.put("ck", b"bytes")
    path = storage.local_path("ck")
    if backend.is_file_based:
        assert path is not None
        assert path.is_file()
        assert path.read_bytes() == b"bytes"
        assert path.name == "ck.safetensors"
    else:
        assert path is None


BAD_IDS = ["", "a/b", "..", "../escape", "/abs", "a\\b", "a.b", "x" * 65, "ok\n"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_unsafe_ids_are_refused_before_touching_storage(backend: Backend, bad: str) -> None:
    storage = backend.storage
    storage.put("keep", b"kept")
    before = backend.names()
    calls: list[Callable[[], object]] = [
        lambda: storage.put(bad, b"evil"),
        lambda: storage.read(bad),
        lambda: storage.exists(bad),
        lambda: storage.delete(bad),
        lambda: storage.size(bad),
        lambda: storage.iter_chunks(bad),
        lambda: storage.local_path(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid checkpoint id"):
            call()
    assert backend.names() == before
    assert storage.read("keep") == b"kept"


def test_no_temp_files_left_behind(backend: Backend) -> None:
    storage = backend.storage
    for i in range(5):
        storage.put("ck", os.urandom(1000 + i))
        storage.put(f"other{i}", b"x")
    expected = sorted(["ck.safetensors"] + [f"other{i}.safetensors" for i in range(5)])
    assert backend.names() == expected


def test_overwrite_is_atomic_for_readers(backend: Backend) -> None:
    """A reader racing a writer sees one whole payload or the other, never a mix or a part."""
    storage = backend.storage
    payloads = [b"A" * (4 << 20), b"B" * (4 << 20)]
    storage.put("race", payloads[0])
    stop = threading.Event()
    seen: set[bytes] = set()
    bad: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                got = storage.read("race")
                if got in payloads:
                    seen.add(got[:1])
                else:
                    bad.append(f"{len(got)} bytes, first {got[:1]!r}, last {got[-1:]!r}")
        except BaseException as exc:  # surfaces in the main thread, not lost in this one
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            storage.put("race", payloads[i % 2])
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert not bad, bad[:5]
    assert seen  # the readers did run
    assert backend.names() == ["race.safetensors"]


def test_make_storage_default_is_files_dir(tmp_path: Path) -> None:
    storage = make_storage("", tmp_path / "files")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "files"


def test_make_storage_plain_path_is_local(tmp_path: Path) -> None:
    storage = make_storage(str(tmp_path / "elsewhere"), tmp_path / "files")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "elsewhere"


def test_make_storage_file_url_is_local(tmp_path: Path) -> None:
    url = (tmp_path / "shared").as_uri()
    assert url.startswith("file:///")
    storage = make_storage(url, tmp_path / "files")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "shared"
    storage.put("ck", b"x")
    assert (tmp_path / "shared" / "ck.safetensors").read_bytes() == b"x"


def test_make_storage_other_url_is_fsspec(tmp_path: Path) -> None:
    name = f"curvegan-test-{uuid.uuid4().hex}"
    storage = make_storage(f"memory://{name}", tmp_path / "files")
    assert isinstance(storage, FsspecStorage)
    assert storage.local_path("ck") is None
    assert not (tmp_path / "files").exists()  # the default directory is left alone


def _raw_put(storage: CheckpointStorage, name: str, data: bytes) -> None:
    """A file under the root that did not come through put (a killed writer's leftover)."""
    if isinstance(storage, LocalStorage):
        (storage.root / name).write_bytes(data)
    else:
        assert isinstance(storage, FsspecStorage)
        storage.fs.pipe_file(f"{storage.root}/{name}", data)


def test_open_reads_the_whole_file_even_after_a_delete(backend: Backend) -> None:
    storage = backend.storage
    data = os.urandom(3 << 20)
    storage.put("ck", data)
    fh, size = storage.open("ck")
    storage.delete("ck")
    with fh:
        assert size == len(data) and fh.read() == data
    with pytest.raises(FileNotFoundError):
        storage.open("ck")


def test_remove_stale_takes_only_old_temp_files_and_lists_old_checkpoints(
    backend: Backend,
) -> None:
    storage = backend.storage
    storage.put("kept", b"k" * 10)
    _raw_put(storage, ".ck.safetensors.a1b2c3.tmp", b"partial")
    _raw_put(storage, ".ck.0123abcd.tmp", b"partial")
    before = sorted(backend.names())
    # Nothing is older than an hour ago: a live writer's file is left alone.
    assert storage.remove_stale(time.time() - 3600) == (0, [])
    assert sorted(backend.names()) == before
    removed, old = storage.remove_stale(time.time() + 60)
    assert removed == 2 and old == ["kept"], (removed, old)
    assert backend.names() == ["kept.safetensors"]
