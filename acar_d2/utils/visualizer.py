"""
Drawing action detections on frames and writing annotated videos.

Used by ``tools/demo.py``, ``make quickstart`` and the synthetic world's mp4 copies (the one video
writer of the package). Frames are uint8 RGB arrays (H, W, 3); boxes are in the frame's pixel
coordinates.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["ActionVisualizer", "write_video", "rgb_to_yuv420p"]

# A small fixed palette (RGB) so that the same track index gets the same color in every frame.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
]


class ActionVisualizer:
    """
    Draws person boxes with their top-k action labels.

    Args:
        class_names (list[str]): K action names, index-aligned with ``action_scores``.
        top_k (int): number of labels drawn per box.
        score_thresh (float): labels below this score are not drawn (the box still is).
    """

    def __init__(self, class_names: Sequence[str], top_k: int = 3, score_thresh: float = 0.2):
        self.class_names = list(class_names)
        self.top_k = top_k
        self.score_thresh = score_thresh
        self.font = ImageFont.load_default()

    def labels_for(self, action_scores: np.ndarray) -> List[List[Tuple[str, float]]]:
        """
        Args:
            action_scores (ndarray): (R, K) probabilities.
        Returns:
            list[list[(name, score)]]: per box, at most ``top_k`` labels in descending score.
        """
        out = []
        for scores in np.asarray(action_scores, dtype=np.float64).reshape(-1, len(self.class_names)):
            order = np.argsort(-scores, kind="stable")[: self.top_k]
            out.append([(self.class_names[k], float(scores[k])) for k in order if scores[k] >= self.score_thresh])
        return out

    def draw(
        self,
        frame: np.ndarray,
        boxes: np.ndarray,
        action_scores: np.ndarray,
        title: Optional[str] = None,
    ) -> np.ndarray:
        """
        Args:
            frame (ndarray): (H, W, 3) uint8 RGB.
            boxes (ndarray): (R, 4) XYXY in frame pixels.
            action_scores (ndarray): (R, K).
            title (str or None): text drawn in the top-left corner (e.g. the time stamp).
        Returns:
            ndarray: (H, W, 3) uint8, a new array (the input is not modified).
        """
        img = Image.fromarray(np.ascontiguousarray(frame))
        draw = ImageDraw.Draw(img)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for i, (box, labels) in enumerate(zip(boxes, self.labels_for(action_scores))):
            color = _PALETTE[i % len(_PALETTE)]
            draw.rectangle([float(v) for v in box], outline=color, width=2)
            y = box[1]
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


def write_video(
    path: str,
    frames: Sequence[np.ndarray],
    fps: float,
    *,
    crf: Optional[int] = None,
    bit_rate: Optional[int] = None,
) -> None:
    """
    Encode RGB frames to a video file with PyAV (H.264 when the build has libx264, else mpeg4).

    Deterministic: one encoder thread and the colour conversion done in numpy
    (:func:`rgb_to_yuv420p`), so the same frames give the same bytes on every run.

    Args:
        path (str): output file, e.g. ``out.mp4``.
        frames (list[ndarray]): (H, W, 3) uint8 RGB frames of equal size; an odd last row/column
            is cropped (4:2:0 needs even sizes).
        fps (float): frame rate.
        crf (int or None): libx264 constant-rate factor (lower = better; None: the encoder default).
        bit_rate (int or None): bits/s for the mpeg4 fallback (None: the encoder default).
    """
    import av
    from fractions import Fraction

    if len(frames) == 0:
        raise ValueError(f"write_video({path!r}): no frames to write")
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        if codec == "libx264":
            stream.options = dict({"threads": "1"}, **({"crf": str(crf)} if crf is not None else {}))
        elif bit_rate is not None:
            stream.bit_rate = bit_rate
        for i, frame in enumerate(frames):
            if frame.shape[:2] != frames[0].shape[:2]:
                raise ValueError(f"write_video({path!r}): frame {i} is {frame.shape[:2]}, frame 0 "
                                 f"is {frames[0].shape[:2]}")
            yuv = rgb_to_yuv420p(np.ascontiguousarray(frame[:h, :w]))
            for packet in stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
