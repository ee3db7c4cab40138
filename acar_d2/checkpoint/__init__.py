"""
Checkpoint loading: ``ACARCheckpointer`` (detectron2 checkpointer that reads PySlowFast ``.pyth``,
Caffe2 ``.pkl`` and official ACAR-Net files), the pure conversion ``convert_checkpoint`` and
``convert_file`` (foreign file -> detectron2-format file), and the pickle readers that never run
code from a file (``safe_pickle``), and ``load_person_detector_weights`` (a detectron2 detector
file into the person detector). Formats and key mapping: ``docs/CHECKPOINTS.md``.
"""
from .checkpointer import (
    ACARCheckpointer,
    CheckpointMismatchError,
    ClassRowError,
    ResumeCheckpointError,
    save_detectron2_checkpoint,
)
from .convert import (
    SOURCES,
    ConversionResult,
    UnknownKeysError,
    convert_checkpoint,
    convert_checkpoint_with_report,
    check_output_path,
    convert_file,
    detect_source,
    load_checkpoint_object,
)
from .detector_weights import load_person_detector_weights
from .safe_pickle import ALLOW_UNSAFE_ENV, UnsafePickleError, read_pickle_safely, unsafe_pickle_allowed

__all__ = [
    "ACARCheckpointer",
    "CheckpointMismatchError",
    "ClassRowError",
    "ResumeCheckpointError",
    "UnsafePickleError",
    "ALLOW_UNSAFE_ENV",
    "read_pickle_safely",
    "unsafe_pickle_allowed",
    "check_output_path",
    "save_detectron2_checkpoint",
    "SOURCES",
    "ConversionResult",
    "UnknownKeysError",
    "convert_checkpoint",
    "convert_checkpoint_with_report",
    "convert_file",
    "detect_source",
    "load_checkpoint_object",
    "load_person_detector_weights",
]
