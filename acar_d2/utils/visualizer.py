"""
Drawing action detections on frames and writing annotated videos.

Used by ``tools/demo.py``, ``make quickstart`` and the synthetic world's mp4 copies (the one video
writer of the package). Frames are uint8 RGB arrays (H, W, 3); boxes are in the frame's pixel
coordinates.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["ActionVisualizer", "VideoWriter", "write_video", "rgb_to_yuv420p"]

# A small fixed palette (RGB) so that the same track index gets the same color in every frame.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
]


class ActionVisualizer:
    """
    Draws person boxes with their top-k action labels (and a track id when given).

    Args:
        class_names (list[str]): K action names, index-aligned with ``action_scores``.
        top_k (int): number of labels drawn per box.
        score_thresh (float or sequence of K floats): labels below this score are not drawn (the
            box still is); a sequence gives one threshold per class (``tools/calibrate_thresholds.py``).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        top_k: int = 3,
        score_thresh: Union[float, Sequence[float]] = 0.2,
    ):
        self.class_names = list(class_names)
        self.top_k = top_k
        thresh = np.asarray(score_thresh, dtype=np.float64)
        if thresh.ndim == 0:
            thresh = np.full(len(self.class_names), float(thresh))
        if thresh.shape != (len(self.class_names),):
            raise ValueError(f"ActionVisualizer: {thresh.size} thresholds for "
                             f"{len(self.class_names)} classes")
        self.thresholds = thresh
        self.score_thresh = score_thresh
        self.font = ImageFont.load_default()

    def labels_for(self, action_scores: np.ndarray) -> List[List[Tuple[str, float]]]:
        """
        Args:
            action_scores (ndarray): (R, K) probabilities.
        Returns:
            list[list[(name, score)]]: per box, at most ``top_k`` labels in descending score,
            each at or above its class threshold.
        """
        out = []
        for scores in np.asarray(action_scores, dtype=np.float64).reshape(-1, len(self.class_names)):
            above = np.flatnonzero(scores >= self.thresholds)
            order = above[np.argsort(-scores[above], kind="stable")][: self.top_k]
            out.append([(self.class_names[k], float(scores[k])) for k in order])
        return out

    def draw(
        self,
        frame: np.ndarray,
        boxes: np.ndarray,
        action_scores: np.ndarray,
        title: Optional[str] = None,
        track_ids: Optional[Sequence[int]] = None,
    ) -> np.ndarray:
        """
        Args:
            frame (ndarray): (H, W, 3) uint8 RGB.
            boxes (ndarray): (R, 4) XYXY in frame pixels.
            action_scores (ndarray): (R, K).
            title (str or None): text drawn in the top-left corner (e.g. the time stamp).
            track_ids (sequence of R ints or None): drawn as ``#id`` above each box; the color
                then follows the track (same person, same color), else the box index.
        Returns:
            ndarray: (H, W, 3) uint8, a new array (the input is not modified).
        """
        img = Image.fromarray(np.ascontiguousarray(frame))
        draw = ImageDraw.Draw(img)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = None if track_ids is None else [int(t) for t in track_ids]
        for i, (box, labels) in enumerate(zip(boxes, self.labels_for(action_scores))):
            key = i if ids is None or ids[i] < 0 else ids[i]
            color = _PALETTE[key % len(_PALETTE)]
            draw.rectangle([float(v) for v in box], outline=color, width=2)
            y = box[1]
            if ids is not None and ids[i] >= 0:
                text = f"#{ids[i]}"
                left, top, right, bottom = draw.textbbox((box[0], box[1]), text, font=self.font)
                dy = max(0.0, box[1] - (bottom - top) - 2) - top
                draw.rectangle([left - 1, top + dy - 1, right + 1, bottom + dy + 1], fill=color)
                draw.text((box[0], box[1] + dy), text, fill=(0, 0, 0), font=self.font)
            for name, score in labels:
                text = f"{name} {score:.2f}"
                left, top, right, bottom = draw.textbbox((box[0] + 2, y + 1), text, font=self.font)
                draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=color)
                draw.text((box[0] + 2, y + 1), text, fill=(0, 0, 0), font=self.font)
                y = bottom + 1
        if title:
            draw.text((3, 3), title, fill=(255, 255, 255), font=self.font)
        return np.asarray(img)


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
    """

    def __init__(self, path: str, fps: float, *, crf: Optional[int] = None,
                 bit_rate: Optional[int] = None):
        self.path = path
        self.fps = fps
        self.crf = crf
        self.bit_rate = bit_rate
        self.num_frames = 0
        self._container = None
        self._stream = None
        self._size = None

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
                                  **({"crf": str(self.crf)} if self.crf is not None else {}))
        elif self.bit_rate is not None:
            stream.bit_rate = self.bit_rate
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """
        Args:
            frame (ndarray): (H, W, 3) uint8 RGB, the size of the first frame; an odd last
                row/column is cropped (4:2:0 needs even sizes).
        """
        import av

        if self._container is None:
            self._open(frame)
        if frame.shape[:2] != self._size:
            raise ValueError(f"VideoWriter({self.path!r}): frame {self.num_frames} is "
                             f"{frame.shape[:2]}, frame 0 is {self._size}")
        h, w = self._stream.height, self._stream.width
        yuv = rgb_to_yuv420p(np.ascontiguousarray(frame[:h, :w]))
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        """Flush the encoder and finalise the file (idempotent)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
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
