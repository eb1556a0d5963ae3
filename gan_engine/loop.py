"""What every training run shares: its random streams, its intra-op threads, what it reports
(LogRecord, RunResult, TrainingDiverged) and the training loop itself, written once in
``Loop``: ``Population`` (every job, the CLI) and the autograd reference ``Trainer`` (the
test oracle) both run it."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch

from .checkpoint import Checkpoint
from .config import MAX_SEED, TrainConfig


class TrainingDiverged(RuntimeError):
    """Losses became NaN or infinite; ``step`` is the step at which it was seen."""

    def __init__(self, step: int, detail: str) -> None:
        super().__init__(f"training diverged at step {step}: {detail}")
        self.step = step


@dataclass(frozen=True)
class LogRecord:
    """The metrics logged every ``log_every`` steps."""

    step: int
    d_loss: float
    g_loss: float
    d_accuracy: float  # mean D(real), the tutorial's name; 0.5 at equilibrium
    d_score: float  # -d_loss; -2 ln 2 = -1.386 at equilibrium
    in_band: float
    resid: float
    w1_a: float
    a_std: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> LogRecord | None:
        """The record a checkpoint's metrics were taken from, when they are all there."""
        fields = set(cls.__dataclass_fields__) - {"step"}
        if not ckpt.metrics or not fields <= set(ckpt.metrics):
            return None
        return cls(step=ckpt.step, **{k: ckpt.metrics[k] for k in fields})


@dataclass(frozen=True)
class RunResult:
    step: int
    stopped: bool  # True when should_stop ended the run before config.steps
    last: LogRecord | None


def derive_seed(seed: int, purpose: str) -> int:
    """Independent streams from one seed, so model init, data and evaluation never share draws."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & MAX_SEED


@contextlib.contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Loop:
    """The training loop over members that step together (K for a population, one for the
    reference trainer). A subclass supplies the step, the evaluation and the checkpoints."""

    config: TrainConfig
    step_count: int
    num_threads: int | None

    # ------------------------------------------------------------ what a subclass supplies
    @property
    def live(self) -> list[int]:
        """The members still reporting (not diverged, not dropped)."""
        raise NotImplementedError

    def step(self) -> object:
        raise NotImplementedError

    def evaluate_live(self) -> dict[int, LogRecord]:
        """The live members' records of the latest step; raises TrainingDiverged when no
        member is left that has not diverged."""
        raise NotImplementedError

    def checkpoints(self) -> dict[int, Checkpoint]:
        """The live members' checkpoints, by member index."""
        raise NotImplementedError

    def record_of(self, i: int) -> LogRecord | None:
        """Member ``i``'s latest record (evaluated, or read from its checkpoint)."""
        raise NotImplementedError

    @property
    def stepped(self) -> bool:
        """Whether a step has run, so that there is something to evaluate."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop
    def unlogged(self, i: int) -> bool:
        """Member ``i`` moved since its last record."""
        last = self.record_of(i)
        return self.stepped and (last is None or last.step != self.step_count)

    def _loop(
        self,
        *,
        on_log: Callable[[dict[int, LogRecord]], None] | None,
        should_stop: Callable[[], bool] | None,
        on_checkpoint: Callable[[dict[int, Checkpoint]], None] | None,
        should_checkpoint: Callable[[], bool] | None,
    ) -> RunResult:
        """Trains up to ``config.steps``.

        Between steps it asks ``should_stop`` (cancellation) and ``should_checkpoint``
        (save now); it calls ``on_log`` every ``log_every`` steps and ``on_checkpoint`` every
        ``checkpoint_every`` steps and once at the end, stopped or not, with the records and
        checkpoints of the live members. A run with no live member left stops. Raises
        TrainingDiverged, before any checkpoint of the bad weights, if every member's losses
        stopped being finite.
        """
        cfg = self.config
        stopped = False
        with intra_op_threads(self.num_threads):
            while self.step_count < cfg.steps:
                if (should_stop is not None and should_stop()) or not self.live:
                    stopped = True
                    break
                self.step()
                s = self.step_count
                if s % cfg.log_every == 0 or s == cfg.steps:
                    records = self.evaluate_live()
                    if on_log is not None and records:
                        on_log(records)
                wants = should_checkpoint is not None and should_checkpoint()
                periodic = cfg.checkpoint_every and s % cfg.checkpoint_every == 0
                if (
                    on_checkpoint is not None
                    and s < cfg.steps
                    and (periodic or wants)
                    and self.live
                ):
                    on_checkpoint(self.checkpoints())
            if stopped and self.live and self.unlogged(self.live[0]):
                records = self.evaluate_live()
                if on_log is not None and records:
                    on_log(records)
            if on_checkpoint is not None and self.live:
                on_checkpoint(self.checkpoints())
        last = self.record_of(self.live[0]) if self.live else None
        return RunResult(step=self.step_count, stopped=stopped, last=last)
