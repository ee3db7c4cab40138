"""
Time, not frames: where the frames of a clip lie in seconds, and which source frame is on screen
at a given second.

A model samples its clips at its own frame rate (``INPUT.CLIP.FPS``, AVA: 30): frame k of the
clip of key time t is the source frame on screen at

    t + (k * SAMPLING_RATE - (NUM_FRAMES * SAMPLING_RATE) // 2) / FPS  seconds

(the official index rule ``key - T * rate // 2 + k * rate`` at the model's rate, in seconds), for
any source: a frame folder at another rate, a 25 / 60 fps file, a variable-rate phone video. A
frame is on screen from its presentation time until the next frame's; times before the first
frame take the first, times after the last frame the last (the official clamp at the ends).

No detectron2 or torch import: numpy only.
"""
from typing import Sequence

import numpy as np

__all__ = ["TIME_EPS", "clip_time_offsets", "clip_times", "frames_on_screen",
           "frame_folder_indices"]

# Presentation times are compared with this tolerance (seconds): a time computed as
# key / 30 + 2 / 30 must find the frame whose time is (key + 2) / 30.
TIME_EPS = 1e-6


def clip_time_offsets(num_frames: int, sampling_rate: int, fps: float) -> np.ndarray:
    """
    Seconds of a clip's frames relative to its key time.

    Args:
        num_frames (int): T frames; sampling_rate (int): every ``sampling_rate``-th frame of a
            video at ``fps``; fps (float): the model's frame rate (``INPUT.CLIP.FPS``).
    Returns:
        float64 ndarray (T,): ``(k * rate - T * rate // 2) / fps``, k = 0 .. T-1 (32x2 at 30 fps:
        -32/30 .. +30/30 s).
    """
    if fps <= 0:
        raise ValueError(f"a clip's frame rate must be > 0, got {fps}")
    k = np.arange(int(num_frames), dtype=np.int64)
    return (k * int(sampling_rate) - (int(num_frames) * int(sampling_rate)) // 2) / float(fps)


def clip_times(key_time: float, num_frames: int, sampling_rate: int, fps: float) -> np.ndarray:
    """The T presentation times (seconds) whose frames form the clip of ``key_time``."""
    return float(key_time) + clip_time_offsets(num_frames, sampling_rate, fps)


def frames_on_screen(frame_times: Sequence[float], times: Sequence[float]) -> np.ndarray:
    """
    Which frame is shown at each of ``times``.

    Args:
        frame_times: (N,) presentation times of N frames, increasing.
        times: (T,) seconds.
    Returns:
        int64 ndarray (T,): for each time, the index of the last frame whose presentation time is
        <= it (within :data:`TIME_EPS`); 0 for times before the first frame.
    """
    frame_times = np.asarray(frame_times, np.float64)
    if frame_times.size == 0:
        raise ValueError("no frames to choose from")
    idx = np.searchsorted(frame_times, np.asarray(times, np.float64) + TIME_EPS, side="right") - 1
    return np.clip(idx, 0, frame_times.size - 1).astype(np.int64)


def frame_folder_indices(times: Sequence[float], fps: float, num_frames: int) -> np.ndarray:
    """
    :func:`frames_on_screen` for ``num_frames`` frames at a constant ``fps`` (frame i at i / fps),
    without building their times. At the model's own rate this is the official index rule.

    Returns:
        int64 ndarray (T,) in [0, num_frames - 1].
    """
    if num_frames <= 0:
        raise ValueError(f"a clip needs a video with frames, got num_frames={num_frames}")
    idx = np.floor(np.asarray(times, np.float64) * float(fps) + TIME_EPS * float(fps))
    return np.clip(idx, 0, num_frames - 1).astype(np.int64)
