"""Training and evaluation loop pieces used by ``tools/train_net.py`` (detectron2 engine based)."""
from ..data.samplers import ResumableTrainingSampler
from .resume import capture_rng_state, restore_rng_state
from .defaults import ActionPredictor, setup_cfg
from .trainer import Trainer, create_ddp_model

__all__ = [
    "setup_cfg",
    "ActionPredictor",
    "Trainer",
    "create_ddp_model",
    "ResumableTrainingSampler",
    "capture_rng_state",
    "restore_rng_state",
]
