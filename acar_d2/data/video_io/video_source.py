"""
Video sources for the demo, decoded once from front to back (the frames' times and the buffer that
serves clips from them: ``frame_buffer.py``).

A source is an iterable of uint8 RGB frames (H, W, 3) in display order with ``fps``, ``width``,
``height`` and ``num_frames`` (None for a live source); :meth:`VideoSource.timed_frames` gives
each frame with its presentation time in seconds from the start (a file's or stream's own
timestamps, constant or variable rate; a frame folder's ``i / fps``), which is what clips and key
frames are placed by (:mod:`~acar_d2.data.video_io.timing`). :func:`open_video_source` picks one:

* a folder of images (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``), frames in natural name order
  (``img_2.jpg`` before ``img_10.jpg``): :class:`FrameFolderSource`;
* anything else FFmpeg opens through PyAV: a video file, a V4L2 device (``/dev/video0``), an
  RTSP / HTTP URL, a pipe (``-`` or ``pipe:0``): :class:`PyAVSource`.

Errors are :class:`VideoSourceError` (a ``ValueError``) naming the source: a source that cannot
be opened when it is opened, a decoding error or a file that ends before the frame count of its
header while it is iterated (after yielding every frame decoded before).
"""
import copy
import os
import re
from typing import Iterator, Optional, Tuple

import numpy as np

__all__ = [
    "VideoSourceError",
    "VideoSource",
    "PyAVSource",
    "FrameFolderSource",
    "open_video_source",
    "IMAGE_EXTENSIONS",
    "is_live_source",
    "as_rgb",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class VideoSourceError(ValueError):
    """A source that cannot be opened or stops with an error; the message names it."""


class VideoSource:
    """
    Base class: iterate to get (H, W, 3) uint8 RGB frames, once, in order.

    Attributes:
        name (str): what the user gave (path, URL, device).
        fps (float): frames per second (frame k is at time k / fps).
        width, height (int): frame size in pixels.
        num_frames (int or None): frames announced by the source; None when unknown (live).
        duration (float or None): seconds from the start to the end of the last frame, when the
            source tells it (files, frame folders); None for live sources.
        frames_read (int): frames yielded so far.
    """

    name: str
    fps: float
    width: int
    height: int
    num_frames: Optional[int]
    duration: Optional[float] = None
    is_live: bool = False

    def __init__(self):
        self.frames_read = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def raw_frames(self) -> Iterator:
        """
        The frames as the decoder gives them: (H, W, 3) uint8 arrays, or objects with
        ``to_ndarray(format="rgb24")`` (PyAV frames) converted only when used
        (:meth:`FrameRingBuffer.__getitem__`, :func:`as_rgb`). Default: ``iter(self)``.
        """
        return iter(self)

    def timed_frames(self) -> Iterator[Tuple[float, object]]:
        """
        ``(time, frame)`` pairs in display order: the presentation time in seconds from the start
        of the source and the frame as :meth:`raw_frames` gives it. Default: frame i at
        ``i / fps`` (frame folders, sources without timestamps).
        """
        for i, frame in enumerate(self.raw_frames()):
            yield i / self.fps, frame

    def reopen(self) -> "VideoSource":
        """A fresh source of the same frames from the start (a second pass over a file: the
        feature-bank pass of ``VideoActionPredictor``). Live and in-memory sources cannot.

        Raises:
            VideoSourceError: naming the source.
        """
        raise VideoSourceError(f"{getattr(self, 'name', type(self).__name__)} cannot be read a "
                               "second time (a live or in-memory source)")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FrameFolderSource(VideoSource):
    """
    The images of a folder as a video.

    Args:
        folder (str): the folder.
        fps (float): the frame rate the images were taken at (not stored in images).
        frame_template (str or None): ``str.format`` pattern of the 1-based frame number (e.g.
            ``"{video_id}_{:06d}.jpg"`` already formatted with the id); None = every image file of
            the folder, in natural name order.
        num_frames (int or None): with ``frame_template``, the number of frames.
    """

    def __init__(self, folder: str, fps: float, frame_template: Optional[str] = None,
                 num_frames: Optional[int] = None):
        super().__init__()
        if not os.path.isdir(folder):
            raise VideoSourceError(f"frame folder not found: {folder}")
        if not fps or fps <= 0:
            raise VideoSourceError(f"frame folder {folder}: give its frame rate (got fps={fps})")
        self.name = folder
        self.fps = float(fps)
        if frame_template is not None:
            if not num_frames:
                raise VideoSourceError(f"frame folder {folder}: frame_template needs num_frames")
            self.paths = [os.path.join(folder, frame_template.format(i + 1))
                          for i in range(int(num_frames))]
        else:
            names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
            self.paths = [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]
        if not self.paths:
            raise VideoSourceError(f"frame folder {folder} holds no image "
                                   f"({', '.join(IMAGE_EXTENSIONS)})")
        first = self._read(0)
        self.height, self.width = first.shape[:2]
        self.num_frames = len(self.paths)
        self.duration = self.num_frames / self.fps

    def reopen(self) -> "FrameFolderSource":
        again = copy.copy(self)
        again.frames_read = 0
        return again

    def _read(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except FileNotFoundError:
            raise VideoSourceError(f"frame {i + 1} of {self.name} not found: {path}") from None
        except Exception as e:  # PIL raises several types for broken files
            raise VideoSourceError(f"corrupt or unreadable frame {path}: {e}") from e

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self.paths)):
            frame = self._read(i)
            if frame.shape[:2] != (self.height, self.width):
                raise VideoSourceError(
                    f"frame {self.paths[i]} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                    f"of {self.name} is {self.width}x{self.height}")
            self.frames_read += 1
            yield frame


def is_live_source(name: str) -> bool:
    """True for a device, URL or pipe (no file to check or count frames of)."""
    return (name in ("-",) or name.startswith(("/dev/", "pipe:"))
            or re.match(r"^[a-z][a-z0-9+.-]*://", name) is not None)


class PyAVSource(VideoSource):
    """
    Any FFmpeg input through PyAV, decoded front to back (never seeks).

    Args:
        name (str): a file, a device (``/dev/video0``), a URL (``rtsp://...``), ``-`` for stdin.
        fps (float or None): frame rate to use when the stream does not tell (live sources);
            None = the stream's average rate (an error if it has none).
        format (str or None): FFmpeg input format (e.g. ``"v4l2"``), None = guessed.
        options (dict or None): FFmpeg input options (e.g. ``{"rtsp_transport": "tcp"}``).
    """

    def __init__(self, name: str, fps: Optional[float] = None, format: Optional[str] = None,
                 options: Optional[dict] = None):
        import av

        super().__init__()
        self._open_args = (name, fps, format, options)
        self.name = name
        self.is_live = is_live_source(name)
        if not self.is_live and not os.path.exists(name):
            raise VideoSourceError(f"input video not found: {name}")
        if os.path.isdir(name):
            raise VideoSourceError(f"{name} is a folder: use FrameFolderSource")
        target = "pipe:0" if name == "-" else name
        try:
            self._container = av.open(target, format=format, options=options or {})
        except Exception as e:
            raise VideoSourceError(f"cannot open video source {name}: {e}") from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoSourceError(f"video source {name} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        if fps is not None:
            self.fps = float(fps)
        elif rate:
            self.fps = float(rate)
        else:
            self.close()
            raise VideoSourceError(f"video source {name} does not tell its frame rate: give fps")
        self.width = int(stream.codec_context.width)
        self.height = int(stream.codec_context.height)
        self.num_frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
        tb = float(stream.time_base) if stream.time_base is not None else None
        self._start = (stream.start_time * tb if stream.start_time is not None and tb else None)
        self.duration = None
        if not self.is_live:
            if stream.duration is not None and tb:
                self.duration = float(stream.duration * tb)
            elif self._container.duration is not None:
                self.duration = self._container.duration / av.time_base

    def timed_frames(self) -> Iterator[Tuple[float, object]]:
        """
        ``(time, frame)`` by the stream's presentation timestamps, in seconds from the stream's
        start time (its first frame when the container gives none, e.g. a live stream); a frame
        without a timestamp follows the previous one by ``1 / fps``.
        """
        start, prev = self._start, None
        for frame in self.raw_frames():
            t = frame.time
            if t is None:
                t = 0.0 if prev is None else prev + 1.0 / self.fps
            else:
                if start is None:
                    start = float(t)
                t = float(t) - start
            prev = t
            yield t, frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self.raw_frames():
            yield frame.to_ndarray(format="rgb24")

    def raw_frames(self) -> Iterator:
        """PyAV ``VideoFrame`` objects (YUV as decoded; RGB conversion left to the consumer)."""
        import av

        try:
            for frame in self._container.decode(self._stream):
                self.frames_read += 1
                yield frame
        except av.error.FFmpegError as e:
            raise VideoSourceError(
                f"video source {self.name} stopped with a decoding error after {self.frames_read} "
                f"frames{self._of_total()} (truncated or corrupt): {e}") from e
        finally:
            self.close()
        if self.num_frames is not None and not self.is_live:
            missing = self.num_frames - self.frames_read
            # Headers of some files count a frame or two the decoder drops; more is a cut file.
            if missing > max(2, self.num_frames // 100):
                raise VideoSourceError(
                    f"video {self.name} ended after {self.frames_read} of the {self.num_frames} "
                    f"frames its header announces (truncated or corrupt)")

    def _of_total(self) -> str:
        return f" of {self.num_frames}" if self.num_frames else ""

    def reopen(self) -> "PyAVSource":
        if self.is_live:
            return super().reopen()
        return PyAVSource(*self._open_args)

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None


def open_video_source(name: str, fps: Optional[float] = None, **kwargs) -> VideoSource:
    """
    A folder -> :class:`FrameFolderSource` (``fps`` required), anything else ->
    :class:`PyAVSource` (``fps`` overrides the stream's rate). ``kwargs`` go to the source.
    """
    if os.path.isdir(name):
        return FrameFolderSource(name, fps, **kwargs)
    return PyAVSource(name, fps, **kwargs)


def as_rgb(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an array or a PyAV frame (see :meth:`VideoSource.raw_frames`)."""
    return frame if isinstance(frame, np.ndarray) else frame.to_ndarray(format="rgb24")
