"""Video data: dataset registration, clip reading, the clip mapper and loaders."""
from . import datasets  # noqa: F401  (registers the builtin splits)
from ava_eval.label_map import ava_class_list
from .build import build_clip_test_loader, build_clip_train_loader
from .clip_mapper import ClipDatasetMapper
from .video_io import (
    ClipReader,
    clip_frame_indices,
    read_frame_folder_clip,
    read_video_clip,
    video_frame_count_and_size,
)

__all__ = [
    "ClipDatasetMapper",
    "ClipReader",
    "ava_class_list",
    "build_clip_test_loader",
    "build_clip_train_loader",
    "clip_frame_indices",
    "read_frame_folder_clip",
    "read_video_clip",
    "video_frame_count_and_size",
]
