"""Checkpoints: uploads, listing, files, deletion and sampling (with an LRU cache of loaded
generators)."""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from gan_engine import CheckpointError, CurveSampler, Samples, checkpoint_from_bytes
from gan_engine.sampling import non_finite_rows

from ..domain import (
    CheckpointRecord,
    Conflict,
    Invalid,
    InvalidCheckpoint,
    NonFiniteOutput,
    NotFound,
    PayloadTooLarge,
)
from ..domain.commands import SampleCurves
from ..storage import CheckpointStorage
from ..storage.base import read_chunks
from ..storage.diskfull import without_paths
from ..storage.saving import save_checkpoint
from ..store import CheckpointInUse, Page, Store


@dataclass(frozen=True)
class Loaded:
    """A stored checkpoint's sampler, or why it cannot be sampled (its generator failed the
    probe): cached alike, so a bad file is read and probed once, not on every request."""

    sampler: CurveSampler | None
    refusal: str = ""


class SamplerCache:
    """The last few loaded generators by checkpoint id: loading costs far more than sampling."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str, load: Callable[[], Loaded]) -> Loaded:
        with self._lock:
            loaded = self._items.get(key)
            if loaded is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return loaded
        loaded = load()  # outside the lock: a slow load must not block other checkpoints
        with self._lock:
            self.misses += 1
            self._items[key] = loaded
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return loaded

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class CheckpointService:
    def __init__(
        self,
        store: Store,
        storage: CheckpointStorage,
        *,
        max_upload_bytes: int,
        max_samples: int,
        cache_size: int,
        max_data_bytes: int = 0,
    ) -> None:
        self.store = store
        self.storage = storage
        self.max_upload_bytes = max_upload_bytes
        self.max_data_bytes = max_data_bytes  # CURVEGAN_MAX_DATA_BYTES: 507 past it
        self.max_samples = max_samples
        self.cache = SamplerCache(cache_size)

    def get(self, checkpoint_id: str) -> CheckpointRecord:
        row = self.store.get_checkpoint(checkpoint_id)
        if row is None:
            raise NotFound(f"no checkpoint with id {checkpoint_id!r}")
        return row

    def page(self, job_id: str | None, limit: int, offset: int) -> Page[CheckpointRecord]:
        """Checkpoints, newest first; with ``job_id``, that job's."""
        return self.store.list_checkpoints(job_id, limit, offset)

    def upload(self, data: bytes) -> CheckpointRecord:
        if len(data) > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"checkpoint is {len(data)} bytes; the limit is {self.max_upload_bytes}"
            )
        if not data:
            raise InvalidCheckpoint(
                "empty body: send the safetensors file as the request body", field="body"
            )
        # Every field is checked here, before anything is written to storage or the store, and
        # the generator must give finite curves: finite but huge weights pass the field checks.
        try:
            ckpt = checkpoint_from_bytes(data, self.max_upload_bytes)
            CurveSampler.from_checkpoint(ckpt).probe()
        except CheckpointError as exc:
            raise InvalidCheckpoint(f"not a usable checkpoint: {exc}", field=exc.field) from None
        # The exact bytes received are kept, so the sha256 a client computed still matches.
        return save_checkpoint(
            self.store,
            self.storage,
            ckpt,
            job_id=None,
            source="upload",
            data=data,
            max_data_bytes=self.max_data_bytes,
        )

    def read_file(
        self, checkpoint_id: str, chunk_size: int = 1 << 20
    ) -> tuple[Iterator[bytes], int]:
        """The checkpoint's file in chunks, and its size. The file is opened here: a download
        streams from this handle, so it is the whole file even if the checkpoint is deleted
        meanwhile; NotFound when the record or the file is gone."""
        self.get(checkpoint_id)
        try:
            fh, size = self.storage.open(checkpoint_id)
        except FileNotFoundError:
            raise NotFound(f"the file of checkpoint {checkpoint_id} is missing") from None
        return read_chunks(fh, chunk_size), size

    def delete(self, checkpoint_id: str) -> None:
        self.get(checkpoint_id)
        try:
            deleted = self.store.delete_checkpoint(checkpoint_id)
        except CheckpointInUse as exc:
            raise Conflict(
                f"checkpoint {checkpoint_id} is where {exc.state} job {exc.job_id} resumes "
                "from; cancel the job first"
            ) from None
        if not deleted:
            raise NotFound(f"no checkpoint with id {checkpoint_id!r}")
        self.cache.drop(checkpoint_id)
        # The record goes first: a crash in between leaves an unlisted file, which the
        # janitor removes, never a record without its file.
        self.storage.delete(checkpoint_id)

    def sampler(self, checkpoint_id: str) -> CurveSampler:
        """The checkpoint's loaded generator; NonFiniteOutput when it fails the probe (a file
        stored before uploads were probed, or weights a run took past float32)."""
        self.get(checkpoint_id)

        def load() -> Loaded:
            try:
                # A stored file is sampled even if its metrics (a report) are odd.
                data = self.storage.read(checkpoint_id)
                ckpt = checkpoint_from_bytes(data, 2**31, odd_metrics="drop")
            except (OSError, CheckpointError) as exc:
                raise NotFound(
                    f"checkpoint {checkpoint_id} cannot be read: {without_paths(exc)}"
                ) from None
            sampler = CurveSampler.from_checkpoint(ckpt)
            try:
                sampler.probe()
            except CheckpointError as exc:
                return Loaded(None, f"checkpoint {checkpoint_id} cannot be sampled: {exc}")
            return Loaded(sampler)

        loaded = self.cache.get(checkpoint_id, load)
        if loaded.sampler is None:
            raise NonFiniteOutput(f"{loaded.refusal}; train or upload another checkpoint")
        return loaded.sampler

    def figure_samples(self, checkpoint_id: str, n: int, seed: int | None) -> Samples:
        """``n`` curves for a figure (its route bounds n), refused when any is not finite."""
        return finite(self.sampler(checkpoint_id).sample(n, seed=seed), checkpoint_id)

    def sample(self, checkpoint_id: str, req: SampleCurves) -> Samples:
        sampler = self.sampler(checkpoint_id)
        limit = self.max_samples
        if req.z is not None:
            n_ideas = sampler.config.n_ideas
            for i, row in enumerate(req.z):
                if len(row) != n_ideas:
                    raise Invalid(f"z.{i}", f"must hold {n_ideas} numbers, got {len(row)}")
                if not all(math.isfinite(v) for v in row):
                    raise Invalid(f"z.{i}", "must hold finite numbers")
            if req.n is not None and req.n != len(req.z):
                raise Invalid("n", f"must equal the number of z rows ({len(req.z)}), got {req.n}")
            if not 1 <= len(req.z) <= limit:
                raise Invalid("z", f"must have between 1 and {limit} rows, got {len(req.z)}")
            # The latents are bounded (schemas.MAX_LATENT), but a checkpoint's weights are not:
            # curves past float32 would go out as nulls, breaking the response's contract.
            samples = sampler.sample(z=np.asarray(req.z, dtype=np.float32))
            return finite(samples, checkpoint_id, latents="z")
        if req.n is None:
            raise Invalid("n", f"is required (an integer in [1, {limit}]) unless z is given")
        if not 1 <= req.n <= limit:
            raise Invalid("n", f"must be in [1, {limit}], got {req.n}")
        return finite(sampler.sample(req.n, seed=req.seed), checkpoint_id)

    @staticmethod
    def to_npy(samples: Samples) -> bytes:
        buf = io.BytesIO()
        np.save(buf, samples.curves, allow_pickle=False)
        return buf.getvalue()


def finite(samples: Samples, checkpoint_id: str, latents: str | None = None) -> Samples:
    """``samples`` when every curve is finite; else NonFiniteOutput saying how many are not.
    The one gate before curves leave: orjson writes NaN and inf as null, and a figure of them
    is broken, so no response may carry them. ``latents`` names the request's z, if given."""
    bad = non_finite_rows(samples.curves)
    if not bad:
        return samples
    n = len(samples.curves)
    if latents is None:
        advice = "sample with another seed, or train or upload another checkpoint"
    else:  # the generator was trained on latents within a few units of 0
        advice = f"send {latents} rows nearer 0, as the latents training drew"
    raise NonFiniteOutput(
        f"{bad} of {n} curves sampled from checkpoint {checkpoint_id} are not finite (inf or "
        f"NaN past float32): {advice}",
        field=latents,
    )
