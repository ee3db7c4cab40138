"""Training and evaluation loop pieces used by ``tools/train_net.py`` (detectron2 engine based)."""
from ..data.samplers import ResumableTrainingSampler
from .resume import capture_rng_state, restore_rng_state
from .defaults import ActionPredictor, setup_cfg
from .trainer import Trainer, create_ddp_model
from .video_predictor import VideoActionPredictor

__all__ = [
    "setup_cfg",
    "ActionPredictor",
    "VideoActionPredictor",
    "Trainer",
    "create_ddp_model",
    "ResumableTrainingSampler",
    "capture_rng_state",
    "restore_rng_state",
]
