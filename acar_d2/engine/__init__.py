"""Training and evaluation loop pieces used by ``tools/train_net.py`` (detectron2 engine based)."""
from .resume import ResumableTrainingSampler, capture_rng_state, restore_rng_state
from .trainer import Trainer, create_ddp_model

__all__ = [
    "Trainer",
    "create_ddp_model",
    "ResumableTrainingSampler",
    "capture_rng_state",
    "restore_rng_state",
]
