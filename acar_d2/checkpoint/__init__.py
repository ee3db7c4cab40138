"""
Checkpoint loading: ``ACARCheckpointer`` (detectron2 checkpointer that reads PySlowFast ``.pyth``,
Caffe2 ``.pkl`` and official ACAR-Net files), the pure conversion ``convert_checkpoint`` and
``convert_file`` (foreign file -> detectron2-format file). Formats and key mapping:
``docs/CHECKPOINTS.md``.
"""
from .checkpointer import ACARCheckpointer, CheckpointMismatchError, save_detectron2_checkpoint
from .convert import (
    SOURCES,
    ConversionResult,
    UnknownKeysError,
    convert_checkpoint,
    convert_checkpoint_with_report,
    convert_file,
    detect_source,
    load_checkpoint_object,
)

__all__ = [
    "ACARCheckpointer",
    "CheckpointMismatchError",
    "save_detectron2_checkpoint",
    "SOURCES",
    "ConversionResult",
    "UnknownKeysError",
    "convert_checkpoint",
    "convert_checkpoint_with_report",
    "convert_file",
    "detect_source",
    "load_checkpoint_object",
]
