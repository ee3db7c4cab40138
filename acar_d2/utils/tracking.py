"""
Linking the persons of successive key frames into tracks, with ``norfair``'s tracker.

Key frames are a second apart (AVA), so a person moves a lot between two of them; norfair's Kalman
filter predicts each track's box at the next key frame and the IoU between that prediction and the
new boxes decides the match (Hungarian-free greedy matching of norfair on ``1 - IoU``).
"""
from typing import List

import numpy as np

__all__ = ["KeyFrameTracker"]


class KeyFrameTracker:
    """
    Track ids for the person boxes of successive key frames.

    Args:
        iou_threshold (float): a box continues a track when its IoU with the track's predicted box
            is at least this (norfair ``distance_threshold = 1 - iou_threshold``).
        max_missed (int): key frames a track survives without a matching box.
        min_score (float): boxes with a lower person score are not tracked (id -1).
    """

    def __init__(self, iou_threshold: float = 0.2, max_missed: int = 2, min_score: float = 0.0):
        from norfair import Tracker

        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.min_score = float(min_score)
        self._tracker = Tracker(
            distance_function="iou",
            distance_threshold=1.0 - iou_threshold,
            hit_counter_max=max(1, int(max_missed)),
            initialization_delay=0,  # an id from the first key frame a person is seen in
        )

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> List[int]:
        """
        Args:
            boxes (ndarray): (R, 4) XYXY px of one key frame.
            scores (ndarray): (R,) person scores.
        Returns:
            list[int]: R track ids (>= 1), -1 for boxes below ``min_score`` or degenerate.
        """
        from norfair import Detection

        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        ok = (scores >= self.min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        detections = [Detection(points=boxes[i].reshape(2, 2), data=i)
                      for i in np.flatnonzero(ok)]
        ids = [-1] * len(boxes)
        for obj in self._tracker.update(detections=detections):
            det = obj.last_detection
            if det is not None and any(det is d for d in detections):
                ids[det.data] = int(obj.id)
        return ids
