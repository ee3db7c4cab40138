"""
Evaluation-side AVA I/O: the submission CSV rows of predictions, and ground truth from dataset
dicts. Reading the AVA files (box CSVs, label map, exclusions) is :mod:`ava_eval.ava_format`.

Submission rows follow the official AVA format (``docs/EVALUATION_PROTOCOL.md``):
``video_id,timestamp,x1,y1,x2,y2,action_id,score``, the timestamp written with 4 digits, boxes
normalized to [0, 1] with 3 decimals, one row per (box, class).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from ava_eval.ava_format import BoxTable

__all__ = ["format_submission_rows", "table_from_dataset_dicts"]


def format_submission_rows(
    video_id: str,
    timestamp: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    action_ids: Sequence[int],
    score_format: str = "%.6f",
) -> list:
    """
    Lines of the official submission CSV for the boxes of one key frame.

    Args:
        boxes (ndarray): (R, 4) x1, y1, x2, y2 normalized to [0, 1]; written with ``%.3f``.
        scores (ndarray): (R, K) action scores; row r, column k becomes the line
            ``video_id,timestamp,x1,y1,x2,y2,action_ids[k],score``.
        action_ids: K dataset action ids (metadata ``action_ids``).
        score_format (str): printf format of the score.

    Returns:
        list[str]: R * K lines without line ends, box-major.
    """
    lines = []
    id_texts = [f"{int(a)}," for a in action_ids]
    for box, row in zip(np.asarray(boxes, dtype=np.float64).tolist(), np.asarray(scores).tolist()):
        prefix = "%s,%04d,%.3f,%.3f,%.3f,%.3f," % (video_id, timestamp, *box)
        lines.extend(prefix + a + score_format % s for a, s in zip(id_texts, row))
    return lines


def table_from_dataset_dicts(
    dataset_dicts: Iterable[dict], source: str = "dataset dicts"
) -> BoxTable:
    """
    Ground truth from acar_d2 dataset dicts (docs/ARCHITECTURE.md), as a :class:`BoxTable`.

    Every annotation contributes one row per entry of its ``action_ids``, with its ``bbox``
    (XYXY_ABS pixels) divided by the dict's width / height, so it compares with predictions
    written in the normalized submission format. The person id (if any) fills ``scores``.

    Raises:
        KeyError / ValueError: naming the video, timestamp and missing key or bad box.
    """
    from detectron2.structures import BoxMode

    index = {}
    keyframe, boxes, labels, person = [], [], [], []
    for d in dataset_dicts:
        where = f"{source}: {d.get('video_id')!r} @ {d.get('timestamp')!r}"
        for key in ("video_id", "timestamp", "height", "width", "annotations"):
            if key not in d:
                raise KeyError(f"{where}: dataset dict has no {key!r}")
        kf = index.setdefault((str(d["video_id"]), int(d["timestamp"])), len(index))
        w, h = float(d["width"]), float(d["height"])
        for ann in d["annotations"]:
            if "bbox" not in ann or "action_ids" not in ann:
                raise KeyError(f"{where}: annotation without 'bbox' or 'action_ids': {ann}")
            box = BoxMode.convert(list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYXY_ABS),
                                  BoxMode.XYXY_ABS)
            norm = [box[0] / w, box[1] / h, box[2] / w, box[3] / h]
            if not (all(map(math.isfinite, norm)) and norm[0] <= norm[2] and norm[1] <= norm[3]):
                raise ValueError(f"{where}: invalid ground-truth box {list(ann['bbox'])}")
            for a in ann["action_ids"]:
                keyframe.append(kf)
                boxes.append(norm)
                labels.append(int(a))
                person.append(float(ann.get("person_id", 1.0)))
    n = len(labels)
    return BoxTable(
        source=source,
        keyframes=list(index),
        keyframe=np.asarray(keyframe, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        scores=np.asarray(person, dtype=np.float64),
        lines=np.arange(1, n + 1, dtype=np.int64),
    )
