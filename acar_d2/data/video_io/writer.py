"""
Encoding RGB frames to a video file: the one video writer of the package (demo outputs,
``make quickstart``, the synthetic world's mp4 copies). Deterministic bytes.
"""
from typing import Optional, Sequence

import numpy as np

from fractions import Fraction

__all__ = ["VideoWriter", "write_video", "rgb_to_yuv420p"]

# Time base of videos written with frame times (the MPEG 90 kHz clock: 30, 25, 24, 60 fps and
# millisecond times are whole ticks).
TIME_BASE = Fraction(1, 90000)


def rgb_to_yuv420p(arr: np.ndarray) -> np.ndarray:
    """
    BT.601 limited-range RGB -> planar YUV 4:2:0, in numpy.

    Converting here instead of letting FFmpeg's swscale do it keeps an mp4 byte-identical across
    runs: swscale picks SIMD paths by buffer alignment, which changes the rounding of a few pixels.

    Args:
        arr (ndarray): uint8 (H, W, 3) RGB, H and W even.
    Returns:
        ndarray: uint8 (H * 3 / 2, W): the Y plane, then U and V (each (H/2, W/2)) row-packed.
    """
    rgb = arr.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = arr.shape[:2]

    def sub(c):  # 2 x 2 mean (4:2:0 chroma), then packed as W-wide rows
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).reshape(h // 4, w)

    planes = np.concatenate([y, sub(u), sub(v)], axis=0)
    return np.clip(np.round(planes), 0, 255).astype(np.uint8)


class VideoWriter:
    """
    Encode RGB frames one at a time with PyAV (H.264 when the build has libx264, else mpeg4).

    Deterministic: one encoder thread and the colour conversion done in numpy
    (:func:`rgb_to_yuv420p`), so the same frames give the same bytes on every run. The file is a
    complete, playable video after :meth:`close` (also called on leaving a ``with`` block, e.g.
    on Ctrl-C). Nothing is created before the first frame.

    Args:
        path (str): output file, e.g. ``out.mp4``.
        fps (float): frame rate.
        crf (int or None): libx264 constant-rate factor (lower = better; None: the encoder default).
        bit_rate (int or None): bits/s for the mpeg4 fallback (None: the encoder default).
        b_frames (bool): let libx264 use B-frames (its default). Without them decoding order is
            display order, so videos can be joined by remuxing (``segments.py``).

    Frames are shown every ``1 / fps`` seconds, or from the times given to :meth:`write` (a
    variable-rate source keeps its timing: the demo writes each frame at its source time).
    """

    def __init__(self, path: str, fps: float, *, crf: Optional[int] = None,
                 bit_rate: Optional[int] = None, b_frames: bool = True):
        self.path = path
        self.b_frames = b_frames
        self.fps = fps
        self.crf = crf
        self.bit_rate = bit_rate
        self.num_frames = 0
        self._container = None
        self._stream = None
        self._size = None
        self._timed = None  # frames written with their times (decided by the first frame)
        self._held = None  # timed: the newest frame, encoded once its duration is known
        self._durations = {}  # timed: pts -> duration of the frames encoded
        self._last_duration = None

    def _open(self, frame: np.ndarray) -> None:
        import av
        from fractions import Fraction

        h, w = frame.shape[:2]
        self._size = (h, w)
        h, w = h - h % 2, w - w % 2
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._container = av.open(self.path, mode="w")
        stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        if codec == "libx264":
            stream.options = dict({"threads": "1"},
                                  **({"crf": str(self.crf)} if self.crf is not None else {}),
                                  **({} if self.b_frames else {"bf": "0"}))
        elif self.bit_rate is not None:
            stream.bit_rate = self.bit_rate
        if self._timed:
            stream.time_base = stream.codec_context.time_base = TIME_BASE
        self._stream = stream

    def write(self, frame: np.ndarray, time: Optional[float] = None) -> None:
        """
        Args:
            frame (ndarray): (H, W, 3) uint8 RGB, the size of the first frame; an odd last
                row/column is cropped (4:2:0 needs even sizes).
            time (float or None): seconds at which the frame is shown (increasing); give it for
                every frame or for none (then frame i is shown at ``i / fps``).
        """
        import av

        if self._container is None:
            self._timed = time is not None
            self._open(frame)
        if (time is not None) != self._timed:
            raise ValueError(f"VideoWriter({self.path!r}): give every frame a time or none")
        if frame.shape[:2] != self._size:
            raise ValueError(f"VideoWriter({self.path!r}): frame {self.num_frames} is "
                             f"{frame.shape[:2]}, frame 0 is {self._size}")
        h, w = self._stream.height, self._stream.width
        yuv = rgb_to_yuv420p(np.ascontiguousarray(frame[:h, :w]))
        out = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        self.num_frames += 1
        if not self._timed:
            self._encode(out)
            return
        # A frame is shown until the next one: it is encoded when the next arrives, with that
        # duration (the last one with the one before it), so the file ends where the source did.
        out.pts, out.time_base = int(round(time / TIME_BASE)), TIME_BASE
        if self._held is not None:
            self._encode_held(out.pts - self._held.pts)
        self._held = out

    def _encode_held(self, duration: int) -> None:
        self._durations[self._held.pts] = self._last_duration = max(int(duration), 1)
        self._encode(self._held)
        self._held = None

    def _encode(self, frame) -> None:
        for packet in self._stream.encode(frame):
            self._mux(packet)

    def _mux(self, packet) -> None:
        if self._timed and packet.pts in self._durations:
            packet.duration = self._durations.pop(packet.pts)
        self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finalise the file (idempotent)."""
        if self._container is None:
            return
        try:
            if self._held is not None:
                self._encode_held(self._last_duration or int(round(1 / (self.fps * TIME_BASE))))
            for packet in self._stream.encode():
                self._mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(
    path: str,
    frames: Sequence[np.ndarray],
    fps: float,
    *,
    crf: Optional[int] = None,
    bit_rate: Optional[int] = None,
) -> None:
    """
    Encode RGB frames to a video file with :class:`VideoWriter` (deterministic bytes).

    Args:
        path (str): output file, e.g. ``out.mp4``.
        frames (list[ndarray]): (H, W, 3) uint8 RGB frames of equal size; an odd last row/column
            is cropped (4:2:0 needs even sizes).
        fps (float): frame rate.
        crf (int or None): libx264 constant-rate factor (lower = better; None: the encoder default).
        bit_rate (int or None): bits/s for the mpeg4 fallback (None: the encoder default).
    """
    if len(frames) == 0:
        raise ValueError(f"write_video({path!r}): no frames to write")
    for i, frame in enumerate(frames):
        if frame.shape[:2] != frames[0].shape[:2]:
            raise ValueError(f"write_video({path!r}): frame {i} is {frame.shape[:2]}, frame 0 "
                             f"is {frames[0].shape[:2]}")
    with VideoWriter(path, fps, crf=crf, bit_rate=bit_rate) as writer:
        for frame in frames:
            writer.write(frame)
