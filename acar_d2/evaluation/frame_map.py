"""
AVA frame-mAP@0.5, the official v2.2 protocol, vectorized with NumPy.

The rules are those of ActivityNet's ``get_ava_performance.py`` (2019, with excluded timestamps);
``docs/EVALUATION_PROTOCOL.md`` describes them for users. The steps, in the official order:

1. label-map filter first, on ground truth and detections;
2. excluded key frames dropped from both;
3. detections: at most 50 rows per key frame over all classes, chosen with the official min-heap
   rule (strict ``>`` to enter a full heap, tie at the cut evicting the smallest
   ``(score, class, y1, x1, y2, x2)`` tuple), emitted in descending score, stable on the heap's
   array order;
4. invalid detection boxes (not ``x1 < x2`` and ``y1 < y2``) removed after the cap;
5. greedy matching per key frame and class in emitted order: best ground truth by first argmax
   of IoU over all ground truth of the class, TP iff IoU >= 0.5 and that box is still free, no
   fallback; key frames without ground truth of the class give FPs;
6. all-point interpolated AP per class over the detections concatenated in key-frame order and
   ranked by ``np.argsort(scores)[::-1]``; NaN for classes without ground truth, 0 for classes
   with ground truth and no detection; mAP = ``np.nanmean``.

Only the top-50 selection runs per key frame in Python, and only on the key frames that have more
than 50 rows and a tie at the cut score; everything else is array code.
"""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, replace
from typing import Dict, Optional, Set, Tuple

import numpy as np

from ..data.ava_format import BoxTable

__all__ = ["FrameMAPResult", "frame_map", "DETECTIONS_PER_KEYFRAME", "IOU_THRESHOLD"]

logger = logging.getLogger(__name__)

# Official AVA protocol constants: rows kept per key frame, IoU of a true positive.
DETECTIONS_PER_KEYFRAME = 50
IOU_THRESHOLD = 0.5


@dataclass
class FrameMAPResult:
    """
    Attributes:
        mAP (float): mean AP over classes with ground truth (NaN if none has).
        per_class_AP (dict[int, float]): label-map id -> AP (NaN: no ground truth).
        num_gt (dict[int, int]): label-map id -> evaluated ground-truth boxes.
        num_detections (dict[int, int]): label-map id -> evaluated detections (after the cap).
    """

    mAP: float
    per_class_AP: Dict[int, float]
    num_gt: Dict[int, int]
    num_detections: Dict[int, int]


def _keyframe_keys(table: BoxTable) -> list:
    return [(vid, int(ts)) for vid, ts in table.keyframes]


def _filter(table: BoxTable, class_ids: np.ndarray, excluded: Set[Tuple[str, int]], what: str):
    """
    Label-map filter, then exclusions. Returns the kept rows, with key frames renumbered in
    order of first appearance among them: the official reader only creates a key frame's entry
    for a whitelisted row, and that order is the per-class concatenation order of the AP step (it
    matters through numpy's unstable argsort on tied scores).
    """
    in_map = np.isin(table.labels, class_ids)
    dropped = int((~in_map).sum())
    if dropped:
        unknown = np.unique(table.labels[~in_map]).tolist()
        # A warning, not an error: the official evaluator silently drops these rows, and ground
        # truth files do hold classes outside the 60-class map (AVA v2.2).
        logger.warning(f"{table.source}: {dropped} {what} row(s) with action ids outside the label "
                       f"map dropped (official rule): ids {unknown[:20]}")
    keep = in_map
    if excluded:
        bad_kf = np.array([k in excluded for k in _keyframe_keys(table)], dtype=bool)
        if bad_kf.any():
            keep = keep & ~bad_kf[table.keyframe]
    return _renumber_keyframes(table.select(keep))


def _renumber_keyframes(table: BoxTable) -> BoxTable:
    """Keep only the key frames that still have rows, numbered by first appearance."""
    if len(table) == 0:
        return replace(table, keyframes=[])
    present, first_row = np.unique(table.keyframe, return_index=True)
    present = present[np.argsort(first_row)]
    remap = np.full(len(table.keyframes), -1, dtype=np.int64)
    remap[present] = np.arange(present.size)
    keyframes = [table.keyframes[k] for k in present.tolist()]
    return replace(table, keyframes=keyframes, keyframe=remap[table.keyframe])


def _heap_top(scores, labels, boxes, order, top_k: int) -> np.ndarray:
    """
    The official reader's top-K heap over the rows ``order`` (file order) of one key frame.

    Returns:
        ndarray: row indices in emitted order (descending score, stable on the heap array).
    """
    heap = []
    for i in order:
        b = boxes[i]
        # Official tuple: (score, class, y1, x1, y2, x2) followed by the row index, which never
        # decides anything because the first six entries differ for distinct rows or are equal
        # for identical rows, whose order cannot change the result.
        item = (scores[i], labels[i], b[1], b[0], b[3], b[2], i)
        if len(heap) < top_k:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    emitted = sorted(heap, key=lambda t: -t[0])
    return np.array([t[-1] for t in emitted], dtype=np.int64)


def _select_detections(
    det: BoxTable, top_k: Optional[int] = DETECTIONS_PER_KEYFRAME
) -> np.ndarray:
    """
    Apply the per-key-frame cap (``top_k`` rows, None: no cap) and the official emission order.

    Returns:
        ndarray: row indices of ``det`` grouped by key frame (key frames in first-appearance
        order), each group in emitted order.
    """
    n = len(det)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    kf = det.keyframe
    scores = det.scores
    # File order inside each key frame, key frames in first-appearance order.
    by_kf = np.argsort(kf, kind="stable")
    counts = np.bincount(kf, minlength=len(det.keyframes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Descending score, ties in file order: the emission order of every key frame whose kept set
    # is its top 50 without a tie at the cut *and* whose heap array order does not matter.
    desc = np.lexsort((np.arange(n), -scores, kf))
    rank = np.empty(n, dtype=np.int64)
    rank[desc] = np.arange(n) - starts[kf[desc]]
    if top_k is None:
        top_k = max(n, 1)  # no cap: every key frame keeps all its rows, no tie at a cut
    keep = rank < top_k

    # Key frames needing the literal heap: more than 50 rows and a tie at the cut, or equal
    # scores among kept rows of the same class (their relative order comes from the heap array).
    sorted_scores = scores[desc]
    sorted_kf = kf[desc]
    cut_pos = starts + np.minimum(counts, top_k) - 1
    next_pos = starts + top_k
    has_more = counts > top_k
    tie_at_cut = np.zeros(len(counts), dtype=bool)
    tie_at_cut[has_more] = sorted_scores[cut_pos[has_more]] == sorted_scores[next_pos[has_more]]
    kept_rows = desc[keep[desc]]
    key = np.lexsort((scores[kept_rows], det.labels[kept_rows], kf[kept_rows]))
    kr = kept_rows[key]
    same = (kf[kr][1:] == kf[kr][:-1]) & (det.labels[kr][1:] == det.labels[kr][:-1]) & (
        scores[kr][1:] == scores[kr][:-1]
    )
    ambiguous = tie_at_cut.copy()
    ambiguous[kf[kr][1:][same]] = True

    selected = desc[keep[desc]]
    if not ambiguous.any():
        return selected
    # Replace the groups of ambiguous key frames by the literal heap result.
    groups = np.split(selected, np.cumsum(np.bincount(kf[selected], minlength=len(counts)))[:-1])
    labels, boxes = det.labels, det.boxes
    for k in np.flatnonzero(ambiguous):
        rows_k = by_kf[starts[k] : starts[k] + counts[k]]
        groups[k] = _heap_top(scores, labels, boxes, rows_k, top_k)
    return np.concatenate(groups)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (P, 4) boxes ``a`` and ``b`` (x1, y1, x2, y2), float64, no +1 term."""
    iw = np.maximum(0.0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
    ih = np.maximum(0.0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
    inter = ih * iw
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)


def _match(gt: BoxTable, gt_kf: np.ndarray, det: BoxTable, det_kf: np.ndarray, rows: np.ndarray):
    """
    Greedy matching of the selected detections ``rows`` (in emitted order).

    Args:
        gt_kf, det_kf: (M,) global key-frame ids of the ground-truth / detection rows.
    Returns:
        ndarray: (len(rows),) bool, true positives.
    """
    n = rows.shape[0]
    tp = np.zeros(n, dtype=bool)
    if n == 0 or len(gt) == 0:
        return tp
    # Ground truth ordered by (key frame, class), inside by descending person id (stable on file
    # order), which is the official GT order.
    g_order = np.lexsort((-gt.scores, gt.labels, gt_kf))
    g_kf, g_lab = gt_kf[g_order], gt.labels[g_order]
    g_boxes = gt.boxes[g_order]
    # Group id of (key frame, class) for both sides.
    d_kf, d_lab = det_kf[rows], det.labels[rows]
    g_key = g_kf.astype(np.int64) * (1 << 20) + g_lab
    d_key = d_kf.astype(np.int64) * (1 << 20) + d_lab
    lo = np.searchsorted(g_key, d_key, side="left")
    hi = np.searchsorted(g_key, d_key, side="right")
    cnt = hi - lo
    has = cnt > 0
    if not has.any():
        return tp
    # All (detection, GT) pairs of the same group.
    det_idx = np.repeat(np.flatnonzero(has), cnt[has])
    offs = np.arange(det_idx.shape[0]) - np.repeat(np.cumsum(cnt[has]) - cnt[has], cnt[has])
    gt_idx = lo[det_idx] + offs
    iou = _iou(det.boxes[rows[det_idx]], g_boxes[gt_idx])
    # First argmax per detection: max IoU, then the smallest GT position among the maxima.
    best = np.full(n, -np.inf)
    np.maximum.at(best, det_idx, iou)
    is_max = iou == best[det_idx]
    best_gt = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best_gt, det_idx[is_max], gt_idx[is_max])
    cand = np.flatnonzero(has & (best >= IOU_THRESHOLD))
    # The first candidate (in emitted order) per best GT box takes it; later ones are FPs.
    _, first = np.unique(best_gt[cand], return_index=True)
    tp[cand[first]] = True
    return tp


def _average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP (VOC2010+), ranking with ``np.argsort(scores)[::-1]``."""
    order = np.argsort(scores)[::-1]
    tp = tp[order]
    fp = ~tp
    cum_tp = np.cumsum(tp)
    cum_fp = np.cumsum(fp)
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[idx] - recall[idx - 1]) * precision[idx]))


def frame_map(
    groundtruth: BoxTable,
    detections: BoxTable,
    label_map: Dict[int, str],
    excluded: Optional[Set[Tuple[str, int]]] = None,
    top_k: Optional[int] = DETECTIONS_PER_KEYFRAME,
) -> FrameMAPResult:
    """
    Frame-mAP@0.5 with the official AVA protocol.

    Args:
        groundtruth (BoxTable): ground-truth rows (``scores`` = person ids).
        detections (BoxTable): detection rows (``scores`` = scores).
        label_map (dict[int, str]): id -> name; its ids are the evaluated classes.
        excluded (set[(video_id, timestamp)]): key frames removed from both sides.
        top_k (int or None): detection rows kept per key frame (official AVA: 50); None keeps
            every row (UCF101-24 frame-mAP, which has no cap).

    Returns:
        FrameMAPResult
    """
    excluded = excluded or set()
    class_ids = np.array(sorted(label_map), dtype=np.int64)
    gt = _filter(groundtruth, class_ids, excluded, "ground-truth")
    det = _filter(detections, class_ids, excluded, "detection")

    # One key-frame id space for both files, key frames in detection first-appearance order
    # (the order the official evaluator visits them).
    det_keys = _keyframe_keys(det)
    index = {k: i for i, k in enumerate(det_keys)}
    for k in _keyframe_keys(gt):
        index.setdefault(k, len(index))
    gt_map = np.array([index[k] for k in _keyframe_keys(gt)], dtype=np.int64)
    gt_kf = gt_map[gt.keyframe] if len(gt) else np.zeros(0, dtype=np.int64)

    rows = _select_detections(det, top_k)
    b = det.boxes[rows]
    valid = (b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3])
    rows = rows[valid]
    det_map = np.arange(len(det_keys), dtype=np.int64)
    det_kf = det_map[det.keyframe] if len(det) else np.zeros(0, dtype=np.int64)
    tp = _match(gt, gt_kf, det, det_kf, rows)

    labels = det.labels[rows]
    scores = det.scores[rows]
    num_gt = {int(c): int(n) for c, n in zip(class_ids, (gt.labels[:, None] == class_ids).sum(0))}
    per_class, num_det = {}, {}
    for c in class_ids.tolist():
        sel = labels == c
        num_det[c] = int(sel.sum())
        if num_gt[c] == 0:
            per_class[c] = float("nan")
            continue
        # Stable selection keeps key-frame order, then emitted order: the official concatenation.
        per_class[c] = _average_precision(scores[sel], tp[sel], num_gt[c])
    # The official mean runs np.nanmean over max(id) class slots (ids outside the map are NaN):
    # the same set of values, summed in the same layout, so the last bit agrees as well.
    slots = np.full(int(class_ids.max()), np.nan)
    slots[class_ids - 1] = [per_class[c] for c in class_ids.tolist()]
    mAP = float(np.nanmean(slots)) if np.isfinite(slots).any() else float("nan")
    return FrameMAPResult(mAP=mAP, per_class_AP=per_class, num_gt=num_gt, num_detections=num_det)
