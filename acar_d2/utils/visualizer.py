"""
Drawing action detections on frames and writing annotated videos.

Used by ``tools/demo.py`` and ``make quickstart``. Frames are uint8 RGB arrays (H, W, 3); boxes are in
the frame's pixel coordinates.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["ActionVisualizer", "write_video"]

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


def write_video(path: str, frames: Sequence[np.ndarray], fps: float) -> None:
    """
    Encode RGB frames to a video file with PyAV (mpeg4; H.264 when the build has libx264).

    Args:
        path (str): output file, e.g. ``out.mp4``.
        frames (list[ndarray]): (H, W, 3) uint8 RGB frames of equal size.
        fps (float): frame rate.
    """
    import av
    from fractions import Fraction

    if len(frames) == 0:
        raise ValueError(f"write_video({path!r}): no frames to write")
    h, w = frames[0].shape[:2]
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        # Encoders need even sizes for yuv420p.
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            arr = np.ascontiguousarray(frame[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
