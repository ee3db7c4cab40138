"""
Clip reading: which frames form a clip, and decoding them from JPEG folders or video files.

All readers return a uint8 tensor (T, 3, H, W) in RGB order, at the source resolution; resizing
and normalization belong to the mapper. A missing or corrupt frame / video raises an error that
names the file (a mapper returning None would make detectron2 silently swap in another sample).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Sequence, Tuple

import numpy as np
import torch
from torchvision.io import decode_jpeg, ImageReadMode

__all__ = [
    "clip_frame_indices",
    "read_frame_folder_clip",
    "read_video_clip",
    "read_video_clip_at_times",
    "video_frame_count_and_size",
    "video_header",
    "VideoHeader",
    "ClipReader",
]


def clip_frame_indices(
    key_frame_index: int, num_frames: int, sampling_rate: int, total_frames: int
) -> np.ndarray:
    """
    Frame indices of a clip centred on a key frame.

    Official ``TemporalCenterCrop`` (ACAR-Net data loader): the window of ``num_frames *
    sampling_rate`` source frames starts ``num_frames * sampling_rate // 2`` frames before the key
    frame (32x2: key - 32) and every ``sampling_rate``-th frame is taken. Indices outside the video
    are clamped to its first / last frame.

    Returns:
        int64 ndarray (T,), T = num_frames.
    """
    if total_frames <= 0:
        raise ValueError(f"a clip needs a video with frames, got total_frames={total_frames}")
    if not 0 <= key_frame_index < total_frames:
        raise ValueError(f"key frame {key_frame_index} is outside the video's {total_frames} frames")
    start = key_frame_index - (num_frames * sampling_rate) // 2
    idx = start + sampling_rate * np.arange(num_frames, dtype=np.int64)
    return np.clip(idx, 0, total_frames - 1)


_POOLS = {}
_POOLS_LOCK = threading.Lock()


def _thread_pool(num_threads: int) -> ThreadPoolExecutor:
    """One pool per process (DataLoader workers fork; a forked pool has no threads)."""
    key = (os.getpid(), num_threads)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(num_threads, thread_name_prefix="acar_jpeg")
        return _POOLS[key]


def _decode_frame(path: str) -> torch.Tensor:
    """(3, H, W) uint8 RGB of one JPEG; errors name the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"frame not found: {path}") from None
    try:
        # torchvision's libjpeg decode is ~1.7x faster than PIL's on 340x455 AVA frames.
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB)
    except RuntimeError as e:
        raise ValueError(f"corrupt or unreadable frame {path}: {e}") from e


def read_frame_folder_clip(
    frame_dir: str, frame_template: str, indices: Sequence[int], num_threads: int = 0
) -> torch.Tensor:
    """
    Decode frames ``frame_dir/frame_template.format(i + 1)`` (1-based file names) of a clip.

    Each distinct index is decoded once (clamped clips repeat boundary frames).

    Args:
        frame_dir (str): folder of the video's frames.
        frame_template (str): ``str.format`` pattern of the 1-based frame number.
        indices (list[int]): T 0-based frame indices.
        num_threads (int): decode in a thread pool of this size (0: serially).
    Returns:
        uint8 Tensor (T, 3, H, W).
    """
    unique = sorted(set(int(i) for i in indices))
    paths = [os.path.join(frame_dir, frame_template.format(i + 1)) for i in unique]
    if num_threads > 0 and len(paths) > 1:
        decoded = list(_thread_pool(num_threads).map(_decode_frame, paths))
    else:
        decoded = [_decode_frame(p) for p in paths]
    shapes = {tuple(d.shape) for d in decoded}
    if len(shapes) != 1:
        raise ValueError(f"frames of {frame_dir} have different sizes {sorted(shapes)}")
    pos = {i: k for k, i in enumerate(unique)}
    return torch.stack([decoded[pos[int(i)]] for i in indices])


def _open_video(video_file: str):
    import av

    if not os.path.isfile(video_file):
        raise FileNotFoundError(f"video not found: {video_file}")
    try:
        container = av.open(video_file)
        if not container.streams.video:
            container.close()
            raise ValueError("no video stream")
    except Exception as e:
        raise ValueError(f"corrupt or unreadable video {video_file}: {e}") from e
    return container


class VideoHeader(NamedTuple):
    """What a video container says about its first video stream (nothing decoded)."""

    num_frames: int  # frames at the container's own rate
    duration: float  # seconds
    rate: float  # frames per second (average rate)
    height: int
    width: int


def video_header(video_file: str) -> VideoHeader:
    """
    Frame count, duration, frame rate and size of a video from its container, without decoding:
    the count is ``stream.frames``, else duration (``stream.duration * time_base``, else
    ``container.duration``) times the average rate, else the number of the stream's packets
    (demuxed, not decoded: one packet per frame for video).

    Raises:
        FileNotFoundError / ValueError naming the file when it is absent, unreadable or empty.
    """
    import av

    container = _open_video(video_file)
    try:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        n = int(stream.frames or 0)
        if n <= 0 and duration and rate > 0:
            n = int(round(duration * rate))
        if n <= 0:  # no count in the header: count the packets (demux only)
            n = sum(1 for packet in container.demux(stream) if packet.size > 0)
        if n <= 0:
            raise ValueError(f"cannot tell the number of frames of video {video_file}")
        if not duration:
            duration = n / rate if rate > 0 else 0.0
        if rate <= 0 and duration > 0:
            rate = n / duration
        return VideoHeader(n, float(duration), rate, int(stream.codec_context.height),
                           int(stream.codec_context.width))
    except av.error.FFmpegError as e:
        raise ValueError(f"corrupt or unreadable video {video_file}: {e}") from e
    finally:
        container.close()


def video_frame_count_and_size(video_file: str) -> Tuple[int, int, int]:
    """(number of frames, height, width) of a video file from its header (:func:`video_header`)."""
    header = video_header(video_file)
    return header.num_frames, header.height, header.width


def read_video_clip(video_file: str, indices: Sequence[int], fps: float) -> torch.Tensor:
    """
    Decode only the frames of a clip from a video file with PyAV: seek to the keyframe before the
    first needed frame, decode up to the last needed one.

    Args:
        video_file (str): the video.
        indices (list[int]): T 0-based frame indices (frame k is at time k / fps).
        fps (float): frame rate that defines the indices.
    Returns:
        uint8 Tensor (T, 3, H, W).
    """
    import av

    wanted = sorted(set(int(i) for i in indices))
    first, last = wanted[0], wanted[-1]
    container = _open_video(video_file)
    got = {}
    try:
        stream = container.streams.video[0]
        # Frame-level threading decodes several frames in parallel inside libavcodec.
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        start_pts = stream.start_time or 0
        container.seek(
            int(start_pts + first / fps / tb), stream=stream, backward=True, any_frame=False
        )
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            k = int(round((frame.pts - start_pts) * tb * fps))
            if k > last:
                break
            if k >= first and k in wanted:
                got[k] = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
    except av.error.FFmpegError as e:
        raise ValueError(f"corrupt or unreadable video {video_file}: {e}") from e
    finally:
        container.close()
    missing = [i for i in wanted if i not in got]
    if missing:
        raise ValueError(
            f"video {video_file}: frames {missing[:5]}{'...' if len(missing) > 5 else ''} "
            f"could not be decoded (video shorter than expected or corrupt)"
        )
    return torch.stack([got[int(i)] for i in indices])


def read_video_clip_at_times(video_file: str, times: Sequence[float]) -> torch.Tensor:
    """
    Decode the frames on screen at ``times`` from a video file by its presentation timestamps
    (constant or variable frame rate): seek to the key frame before the first time, decode up to
    the first frame after the last time (or the end of the video).

    Args:
        video_file (str): the video.
        times: (T,) seconds from the start of the video; times before the first frame take the
            first frame, times after the last frame the last (the official clamp at the ends).
    Returns:
        uint8 Tensor (T, 3, H, W).
    """
    import av

    from .timing import TIME_EPS, frames_on_screen

    times = np.asarray(times, np.float64)
    first, last = float(times.min()), float(times.max())
    container = _open_video(video_file)
    frame_times, frames = [], []
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        start_pts = stream.start_time or 0
        container.seek(int(start_pts + max(first, 0.0) / tb), stream=stream, backward=True,
                       any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = (frame.pts - start_pts) * tb
            if len(frame_times) > 1 and frame_times[1] <= first + TIME_EPS:
                frame_times.pop(0)  # left the screen before the clip starts
                frames.pop(0)
            frame_times.append(t)
            frames.append(frame)
            if t >= last - TIME_EPS:
                break  # the frame on screen at the last time is known
    except av.error.FFmpegError as e:
        raise ValueError(f"corrupt or unreadable video {video_file}: {e}") from e
    finally:
        container.close()
    if not frames:
        raise ValueError(f"video {video_file}: no frame could be decoded at or after "
                         f"{first:.3f} s (video shorter than expected or corrupt)")
    chosen = frames_on_screen(frame_times, times)
    rgb = {int(i): torch.from_numpy(frames[int(i)].to_ndarray(format="rgb24")).permute(2, 0, 1)
           for i in set(chosen.tolist())}
    return torch.stack([rgb[int(i)] for i in chosen])


class ClipReader:
    """
    Reads the frames of a clip described by a dataset dict (``frame_dir`` + ``frame_template``, or
    ``video_file``), see docs/ARCHITECTURE.md.
    """

    def __init__(self, source: str = "frames", num_threads: int = 0):
        """
        Args:
            source (str): "frames" (JPEG folders) or "video" (decode ``video_file`` with PyAV).
            num_threads (int): JPEG decoding threads per clip (frames only).
        """
        if source not in ("frames", "video"):
            raise ValueError(f"clip source must be 'frames' or 'video', got {source!r}")
        self.source = source
        self.num_threads = num_threads

    def __call__(self, dataset_dict: dict, indices: Sequence[int]) -> torch.Tensor:
        """Returns uint8 Tensor (T, 3, H, W) of the frames ``indices`` of the dict's video."""
        if self.source == "frames":
            if not dataset_dict.get("frame_dir") or not dataset_dict.get("frame_template"):
                raise KeyError(
                    f"clip source 'frames' (INPUT.CLIP.SOURCE) needs 'frame_dir' and "
                    f"'frame_template' in the dataset dict of {dataset_dict.get('video_id')},"
                    f"{dataset_dict.get('timestamp')}: its split has no frame folder"
                    + ("; it has a video file: set INPUT.CLIP.SOURCE 'video' (or '' to follow "
                       "the dataset)" if dataset_dict.get("video_file") else
                       "; register its frames (frames= / FRAMES) or its videos (videos= / VIDEOS)")
                )
            return read_frame_folder_clip(
                dataset_dict["frame_dir"], dataset_dict["frame_template"], indices, self.num_threads
            )
        if not dataset_dict.get("video_file"):
            raise KeyError(
                f"clip source 'video' (INPUT.CLIP.SOURCE) needs 'video_file' in the dataset dict "
                f"of {dataset_dict.get('video_id')},{dataset_dict.get('timestamp')}: its split has "
                "no video file"
                + ("; it has frame folders: set INPUT.CLIP.SOURCE 'frames' (or '' to follow "
                   "the dataset)" if dataset_dict.get("frame_dir") else
                   "; register its videos (videos= / VIDEOS) or its frames (frames= / FRAMES)")
            )
        return read_video_clip(dataset_dict["video_file"], indices, dataset_dict["fps"])

    def at_times(self, dataset_dict: dict, times: Sequence[float]) -> torch.Tensor:
        """
        The frames on screen at ``times`` (seconds from the start of the dict's video): a frame
        folder's frame i is shown from ``i / fps`` (the dict's ``fps``, frames clamped to the
        ``num_frames`` on disk); a video file's by its presentation timestamps.

        Returns:
            uint8 Tensor (T, 3, H, W).
        """
        if self.source == "frames":
            from .timing import frame_folder_indices

            indices = frame_folder_indices(times, dataset_dict["fps"], dataset_dict["num_frames"])
            return self(dataset_dict, indices)
        if not dataset_dict.get("video_file"):
            self(dataset_dict, [])  # the error naming the missing key
        return read_video_clip_at_times(dataset_dict["video_file"], times)
