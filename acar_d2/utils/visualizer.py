"""
Drawing action detections on frames (``ActionVisualizer``) and relation maps
(``draw_relation_map``); the annotated frames are encoded by
``acar_d2.data.video_io.VideoWriter``. Frames are uint8 RGB arrays (H, W, 3); boxes are in the frame's pixel
coordinates.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["ActionVisualizer", "draw_relation_map"]

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


def _heat_colors(t: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) float RGB of a black-red-yellow-white ("hot") scale."""
    return np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)


def draw_relation_map(frame: np.ndarray, relation, boxes: np.ndarray,
                      alpha: float = 0.6) -> np.ndarray:
    """
    Overlay one actor's relation map (``acar_d2.modeling.RelationMap``, in the frame's px):
    the heat map in a "hot" colour scale blended in proportion to its value (cells the actor does
    not draw on keep the frame), a cross on the peak, and a line from the actor's box centre to
    every other actor's, as wide as its actor weight (``w=0.42`` written at the other end).

    Args:
        frame (ndarray): (H, W, 3) uint8 RGB.
        relation (RelationMap): ``heatmap`` (H, W), ``actor_weights`` (R,), ``peak_xy``.
        boxes (ndarray): (R, 4) XYXY frame px of the prediction's actors.
        alpha (float): opacity at the map's maximum.
    Returns:
        ndarray: (H, W, 3) uint8, a new array.
    """
    heat = np.asarray(relation.heatmap, np.float64)
    if heat.shape != frame.shape[:2]:
        raise ValueError(f"relation heat map {heat.shape} for a frame {frame.shape[:2]}")
    t = heat / heat.max() if heat.max() > 0 else heat
    a = (alpha * t)[..., None]
    out = (1 - a) * frame.astype(np.float64) + a * 255.0 * _heat_colors(t)
    img = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    i = relation.actor_index
    for j, weight in enumerate(relation.actor_weights):
        if j == i:
            continue
        (x1, y1), (x2, y2) = centres[i], centres[j]
        draw.line([x1, y1, x2, y2], fill=(70, 240, 240), width=1 + int(round(6 * weight)))
        draw.text((x2 + 2, y2 + 2), f"w={weight:.2f}", fill=(70, 240, 240), font=font)
    x, y = relation.peak_xy
    draw.line([x - 5, y, x + 5, y], fill=(255, 255, 255), width=2)
    draw.line([x, y - 5, x, y + 5], fill=(255, 255, 255), width=2)
    return np.asarray(img)
