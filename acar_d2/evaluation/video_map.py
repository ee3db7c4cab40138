"""
Video-mAP for UCF101-24-style datasets: per-frame detections linked into action tubes over each
video, tubes scored against ground-truth tubes by spatio-temporal IoU (thresholds 0.2 / 0.5 /
0.75 as usually reported beside frame-mAP).

Definitions (the common ones of the action-tube literature, e.g. Gkioxari & Malik 2015, Singh et
al. 2017, Kalogeiton et al. 2017):

- A tube is one actor doing one action: a label, a score and one box per frame of a frame range.
- Spatio-temporal IoU of tubes a, b of one video: temporal IoU of their frame ranges
  ``|[s_a, e_a] n [s_b, e_b]| / |[s_a, e_a] u [s_b, e_b]|`` times the mean spatial IoU over the
  frames of the temporal intersection (a frame where one tube has no box counts 0).
- AP per class: detected tubes of that class from all videos by descending score; a detection is a
  true positive when its spatio-temporal IoU with a not yet matched ground-truth tube of the same
  video and class reaches the threshold; AP = area under the precision/recall curve with
  precision made monotone (all-point interpolation, as in PASCAL VOC 2010+). video-mAP = mean AP
  over the classes that have ground-truth tubes.
- Linking (:func:`link_tubes`): per class, frame by frame, online and greedy: active tubes (highest
  mean score first) take the highest-scoring unassigned detection of the next frame whose IoU with
  the tube's last box is at least ``link_iou``; unassigned detections start tubes; a tube without a
  match for more than ``max_gap`` frames ends. Tube score = mean of its detection scores; tubes
  shorter than ``min_length`` frames are dropped.

Command line (after ``tools/train_net.py --eval-only`` wrote ``inference/predictions_<dataset>.csv``)::

    python tools/video_map.py --dataset ucf101_24_test --predictions predictions.csv

NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Tube", "box_iou", "spatio_temporal_iou", "link_tubes", "video_ap", "video_map",
           "gt_tubes_from_dicts", "frame_detections_from_csv", "video_map_of_predictions", "main"]


@dataclass
class Tube:
    """
    One action tube.

    Attributes:
        video (str), label (int): where and what.
        frames (ndarray): (n,) int frame numbers, increasing.
        boxes (ndarray): (n, 4) float x1, y1, x2, y2 of each frame.
        score (float): detection confidence (1.0 for ground truth).
    """

    video: str
    label: int
    frames: np.ndarray
    boxes: np.ndarray
    score: float = 1.0

    def __post_init__(self):
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if len(self.frames) != len(self.boxes) or len(self.frames) == 0:
            raise ValueError(f"tube of {self.video}: {len(self.frames)} frames vs "
                             f"{len(self.boxes)} boxes (needs one box per frame, at least one)")
        if np.any(np.diff(self.frames) <= 0):
            raise ValueError(f"tube of {self.video}: frames must be strictly increasing")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (N, 4) x (M, 4) -> (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def spatio_temporal_iou(a: Tube, b: Tube) -> float:
    """Temporal IoU of the frame ranges x mean spatial IoU over their intersection (0 if none)."""
    if a.video != b.video:
        return 0.0
    s, e = max(a.frames[0], b.frames[0]), min(a.frames[-1], b.frames[-1])
    if e < s:
        return 0.0
    union = max(a.frames[-1], b.frames[-1]) - min(a.frames[0], b.frames[0]) + 1
    t_iou = (e - s + 1) / union
    frames = np.arange(s, e + 1)
    ia = {int(f): i for i, f in enumerate(a.frames)}
    ib = {int(f): i for i, f in enumerate(b.frames)}
    ious = [float(box_iou(a.boxes[ia[f]], b.boxes[ib[f]])[0, 0]) if f in ia and f in ib else 0.0
            for f in frames.tolist()]
    return float(t_iou * np.mean(ious))


def link_tubes(
    video: str,
    detections: Mapping[int, Tuple[np.ndarray, np.ndarray]],
    *,
    link_iou: float = 0.2,
    max_gap: int = 0,
    min_length: int = 1,
    top_k: int = 10,
    min_score: float = 0.0,
) -> List[Tube]:
    """
    Link the per-frame detections of one video into tubes, per class (rules in the module doc).

    Args:
        detections: frame number -> (boxes (R, 4), scores (R, K)) of that frame.
        link_iou: IoU with a tube's last box needed to extend it.
        max_gap: frames a tube may miss before it ends (0: it ends at its first miss).
        min_length: shortest tube kept (frames with a box).
        top_k, min_score: per frame and class, detections kept for linking.
    Returns:
        list[Tube] over all classes (label = class index), by descending score.
    """
    frames = sorted(detections)
    if not frames:
        return []
    num_classes = np.asarray(detections[frames[0]][1]).reshape(len(detections[frames[0]][0]), -1).shape[1]
    out: List[Tube] = []
    for c in range(num_classes):
        active: List[dict] = []
        done: List[dict] = []
        for f in frames:
            boxes, scores = detections[f]
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
            sc = np.asarray(scores, np.float64).reshape(len(boxes), -1)[:, c]
            keep = np.argsort(-sc, kind="stable")[:top_k]
            keep = keep[sc[keep] >= min_score]
            boxes, sc = boxes[keep], sc[keep]
            taken = np.zeros(len(sc), dtype=bool)
            # frames absent from ``detections`` count as misses too
            done += [t for t in active if f - t["frames"][-1] - 1 > max_gap]
            active = [t for t in active if f - t["frames"][-1] - 1 <= max_gap]
            active.sort(key=lambda t: -np.mean(t["scores"]))
            still = []
            for t in active:
                if len(sc):
                    ious = box_iou(t["boxes"][-1], boxes)[0]
                    cand = np.flatnonzero((ious >= link_iou) & ~taken)
                else:
                    cand = np.zeros(0, dtype=np.int64)
                if len(cand):
                    j = int(cand[np.argmax(sc[cand])])
                    taken[j] = True
                    t["frames"].append(f)
                    t["boxes"].append(boxes[j])
                    t["scores"].append(float(sc[j]))
                    still.append(t)
                elif f - t["frames"][-1] > max_gap:
                    done.append(t)
                else:
                    still.append(t)
            for j in np.flatnonzero(~taken):
                still.append({"frames": [f], "boxes": [boxes[j]], "scores": [float(sc[j])]})
            active = still
        for t in done + active:
            if len(t["frames"]) >= min_length:
                out.append(Tube(video, c, t["frames"], np.stack(t["boxes"]), float(np.mean(t["scores"]))))
    out.sort(key=lambda t: -t.score)
    return out


def _average_precision(tp: np.ndarray, num_gt: int) -> float:
    if num_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / num_gt
    precision = ctp / np.arange(1, len(tp) + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def video_ap(gt: Sequence[Tube], detections: Sequence[Tube], threshold: float) -> float:
    """AP of one class: ``gt`` and ``detections`` are that class's tubes of all videos."""
    by_video: Dict[str, List[Tube]] = {}
    for t in gt:
        by_video.setdefault(t.video, []).append(t)
    used = {v: np.zeros(len(ts), dtype=bool) for v, ts in by_video.items()}
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    tp = np.zeros(len(order))
    for r, i in enumerate(order):
        d = detections[i]
        cands = by_video.get(d.video, [])
        if not cands:
            continue
        ious = np.array([spatio_temporal_iou(d, g) for g in cands])
        ious[used[d.video]] = -1.0
        j = int(np.argmax(ious))
        if ious[j] >= threshold:
            tp[r] = 1
            used[d.video][j] = True
    return _average_precision(tp, len(gt))


def video_map(gt: Iterable[Tube], detections: Iterable[Tube],
              thresholds: Sequence[float] = (0.2, 0.5, 0.75),
              class_names: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """
    video-mAP at each threshold (in percent), plus per-class APs.

    Returns:
        {"video_mAP@0.2": .., "video_mAP@0.5": .., ..., "AP@0.5-<name>": ..}: mean over the
        classes with ground-truth tubes; class names default to the labels.
    """
    gt, detections = list(gt), list(detections)
    labels = sorted({t.label for t in gt})
    out: Dict[str, float] = {}
    for th in thresholds:
        aps = []
        for c in labels:
            ap = video_ap([t for t in gt if t.label == c], [t for t in detections if t.label == c], th)
            aps.append(ap)
            name = class_names[c] if class_names is not None else str(c)
            out[f"AP@{th:g}-{name}"] = 100.0 * ap
        out[f"video_mAP@{th:g}"] = 100.0 * float(np.mean(aps)) if aps else float("nan")
    return out


def gt_tubes_from_dicts(dataset_dicts: Iterable[dict], action_ids: Sequence[int]) -> List[Tube]:
    """
    Ground-truth tubes of UCF101-24 dataset dicts (``person_id`` = tube id, ``timestamp`` =
    frame number, one action id per box; docs/ARCHITECTURE.md); labels are class indices into
    ``action_ids``. Use every annotated frame (``key_frame_stride`` 1) for exact tubes.
    """
    index = {a: i for i, a in enumerate(action_ids)}
    parts: Dict[tuple, Dict[int, list]] = {}
    for d in dataset_dicts:
        for ann in d["annotations"]:
            key = (d["video_id"], ann["person_id"], index[ann["action_ids"][0]])
            parts.setdefault(key, {})[int(d["timestamp"])] = ann["bbox"]
    tubes = []
    for (vid, _, label), per_frame in parts.items():
        frames = sorted(per_frame)
        tubes.append(Tube(vid, label, frames, [per_frame[f] for f in frames]))
    return tubes


def frame_detections_from_csv(path: str, action_ids: Sequence[int]) -> Dict[str, Dict[int, tuple]]:
    """
    Per-frame detections of a predictions CSV (``video_id,frame,x1,y1,x2,y2,action_id,score``,
    normalized boxes, one row per box and class, as the evaluator writes it).

    Returns:
        {video: {frame: (boxes (R, 4) normalized, scores (R, K))}}, K = len(action_ids).
    """
    from ava_eval.csv_io import read_box_csv

    table = read_box_csv(path)
    col = {a: i for i, a in enumerate(action_ids)}
    per: Dict[str, Dict[int, Dict[tuple, np.ndarray]]] = {}
    for kf, box, a, sc in zip(table.keyframe.tolist(), table.boxes.tolist(), table.labels.tolist(),
                              table.scores.tolist()):
        if a not in col:
            continue
        vid, frame = table.keyframes[kf]
        row = per.setdefault(vid, {}).setdefault(frame, {}).setdefault(
            tuple(box), np.zeros(len(action_ids)))
        row[col[a]] = max(row[col[a]], sc)
    return {v: {f: (np.array(list(b), np.float64).reshape(-1, 4), np.stack(list(b.values())))
                for f, b in frames.items()} for v, frames in per.items()}


def video_map_of_predictions(dataset_dicts: Sequence[dict], predictions_csv: str,
                             action_ids: Sequence[int], class_names: Optional[Sequence[str]] = None,
                             thresholds: Sequence[float] = (0.2, 0.5, 0.75), **link_kwargs):
    """
    video-mAP of a predictions CSV against the ground-truth tubes of UCF101-24-style dataset
    dicts (pixel boxes, normalized here by each dict's width / height); ``link_kwargs`` go to
    :func:`link_tubes`.
    """
    dicts = []
    for d in dataset_dicts:
        w, h = float(d["width"]), float(d["height"])
        anns = [dict(a, bbox=[a["bbox"][0] / w, a["bbox"][1] / h, a["bbox"][2] / w, a["bbox"][3] / h])
                for a in d["annotations"]]
        dicts.append(dict(d, annotations=anns))
    gt = gt_tubes_from_dicts(dicts, action_ids)
    dets = [t for vid, frames in frame_detections_from_csv(predictions_csv, action_ids).items()
            for t in link_tubes(vid, frames, **link_kwargs)]
    return video_map(gt, dets, thresholds, class_names)
