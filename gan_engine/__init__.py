"""gan_engine: the tutorial's 1-D curve GAN (MorvanZhou's 406_GAN) as a library.

Knows nothing of the web: configs, models, the training loop with hooks (``Population``, the
engine every run trains with; ``Trainer``, its autograd reference), metrics, checkpoints and
sampling.
"""

from .checkpoint import (
    FORMAT_VERSION,
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    CheckpointError,
    checkpoint_from_bytes,
    load_checkpoint,
)
from .config import PRESETS, ConfigError, TrainConfig
from .data import artist_works, x_grid
from .loop import LogRecord, RunResult, TrainingDiverged
from .metrics import Quality, curve_quality, w1_to_uniform
from .models import Discriminator, Generator
from .population import Population
from .reference import Trainer
from .sampling import CurveSampler, Samples

__all__ = [
    "FORMAT_VERSION",
    "MAX_CHECKPOINT_BYTES",
    "PRESETS",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "CurveSampler",
    "Discriminator",
    "Generator",
    "LogRecord",
    "Population",
    "Quality",
    "RunResult",
    "Samples",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "artist_works",
    "checkpoint_from_bytes",
    "curve_quality",
    "load_checkpoint",
    "w1_to_uniform",
    "x_grid",
]
