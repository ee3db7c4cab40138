"""
Video I/O, the one home of decoding and encoding:

* ``clip_reader.py``: the clip around a key frame from a frame folder or a video file (training
  and evaluation, random access), ``video_header``;
* ``video_source.py``: decode-once frame sources (file, frame folder, live) with presentation times;
* ``frame_buffer.py``: the timed frame buffer serving clips from them (the streaming predictors);
* ``timing.py``: a clip's frames in seconds at the model's rate, and the frame on screen at a time;
* ``writer.py``: ``VideoWriter`` / ``write_video`` (deterministic H.264 or mpeg4).
"""
from .clip_reader import (
    ClipReader,
    VideoHeader,
    clip_frame_indices,
    read_frame_folder_clip,
    read_video_clip,
    read_video_clip_at_times,
    video_frame_count_and_size,
    video_header,
)
from .video_source import (
    IMAGE_EXTENSIONS,
    FrameFolderSource,
    PyAVSource,
    VideoSource,
    VideoSourceError,
    as_rgb,
    is_live_source,
    open_video_source,
)
from .frame_buffer import TimedFrameBuffer
from .timing import clip_time_offsets, clip_times, frame_folder_indices, frames_on_screen
from .writer import VideoWriter, rgb_to_yuv420p, write_video

__all__ = [
    "ClipReader", "VideoHeader", "clip_frame_indices", "read_frame_folder_clip", "read_video_clip",
    "read_video_clip_at_times", "video_frame_count_and_size", "video_header",
    "clip_time_offsets", "clip_times", "frame_folder_indices", "frames_on_screen",
    "IMAGE_EXTENSIONS", "FrameFolderSource", "PyAVSource", "TimedFrameBuffer", "VideoSource",
    "VideoSourceError", "as_rgb", "is_live_source", "open_video_source",
    "VideoWriter", "rgb_to_yuv420p", "write_video",
]
