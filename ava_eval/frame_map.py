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

from .csv_io import BoxTable

__all__ = ["FrameMAPResult", "frame_map", "check_boxes_and_scores", "DETECTIONS_PER_KEYFRAME",
           "IOU_THRESHOLD", "BOX_MARGIN"]

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
    matters through numpy's unstable argsort on tied scores); and the number of rows dropped by
    each of the two filters.
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
    num_excluded = int(in_map.sum() - keep.sum())
    return _renumber_keyframes(table.select(keep)), dropped, num_excluded


def _renumber_keyframes(table: BoxTable) -> BoxTable:
    """Keep only the key frames that still have rows, numbered by first appearance."""
    if len(table) == 0:
        return replace(table, keyframes=[])
    kf = table.keyframe
    # A key frame first appears at the start of a run of equal ids (files are grouped by key frame,
    # so there are few runs).
    runs = np.flatnonzero(np.concatenate([[True], kf[1:] != kf[:-1]]))
    present, first_run = np.unique(kf[runs], return_index=True)
    present = present[np.argsort(runs[first_run])]
    remap = np.full(len(table.keyframes), -1, dtype=np.int64)
    remap[present] = np.arange(present.size)
    keyframes = [table.keyframes[k] for k in present.tolist()]
    return replace(table, keyframes=keyframes, keyframe=remap[kf])


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
) -> Tuple[np.ndarray, int]:
    """
    Apply the per-key-frame cap (``top_k`` rows, None: no cap) and the official emission order.

    Returns:
        ndarray: row indices of ``det`` grouped by key frame (key frames in first-appearance
        order), each group in emitted order.
        int: selected rows that exactly repeat another selected row (key frame, class, score, box).
    """
    n = len(det)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    kf, scores, labels = det.keyframe, det.scores, det.labels
    num_kf = len(det.keyframes)
    counts = np.bincount(kf, minlength=num_kf)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Key frames in order, inside by descending score, ties in file order.
    by_score = np.argsort(-scores, kind="stable")
    desc = by_score[np.argsort(kf[by_score], kind="stable")]
    if top_k is None:
        top_k = max(n, 1)  # no cap: every key frame keeps all its rows, no tie at a cut
    rank = np.empty(n, dtype=np.int64)
    rank[desc] = np.arange(n) - np.repeat(starts, counts)
    keep = rank < top_k

    # A tie at the cut (the top_k-th and the next row score the same): which tied rows the
    # official heap keeps follows from the file order and the (class, box) tuples.
    sorted_scores = scores[desc]
    has_more = np.flatnonzero(counts > top_k)
    tie = np.zeros(num_kf, dtype=bool)
    tie[has_more] = (sorted_scores[starts[has_more] + top_k - 1]
                     == sorted_scores[starts[has_more] + top_k])
    if tie.any():
        _resolve_ties_at_cut(det, keep, tie, sorted_scores[starts + np.minimum(counts, top_k) - 1],
                             top_k)

    selected = desc[keep[desc]]
    # Equal scores of the same class in a key frame are matched in the heap's array order: those
    # key frames (rare) take the literal heap. Exact copies of a row are interchangeable.
    ambiguous, duplicates = _equal_score_groups(det, selected)
    if not ambiguous.size:
        return selected, duplicates
    kept_counts = np.bincount(kf[selected], minlength=num_kf)
    ends = np.cumsum(kept_counts)
    by_kf = np.argsort(kf, kind="stable")
    pieces, done = [], 0
    for k in ambiguous.tolist():
        pieces.append(selected[done:ends[k] - kept_counts[k]])
        pieces.append(_heap_top(scores, labels, det.boxes, by_kf[starts[k]:starts[k] + counts[k]],
                                top_k))
        done = ends[k]
    pieces.append(selected[done:])
    return np.concatenate(pieces), duplicates


def _resolve_ties_at_cut(det: BoxTable, keep: np.ndarray, tie: np.ndarray, cut: np.ndarray,
                         top_k: int) -> None:
    """
    Set ``keep`` (M,) for the key frames with ``tie`` (K,) as the official heap leaves them.

    With c the cut score (``cut`` (K,)): every row above c is kept. Let t0 be the row (file order)
    that brings the count of rows scoring >= c to ``top_k``; until then the heap minimum is below
    c, so every row tied at c arriving up to t0 enters and stays. From t0 on the minimum is c: tied
    rows are rejected, and each later row above c evicts the smallest (class, y1, x1, y2, x2)
    tuple among the tied rows.
    """
    kf, scores, boxes = det.keyframe, det.scores, det.boxes
    rows = np.flatnonzero(tie[kf])
    rows = rows[np.argsort(kf[rows], kind="stable")]  # by key frame, file order inside
    frame = kf[rows]
    s, c = scores[rows], cut[frame]
    ge, above, tied = s >= c, s > c, s == c
    first = np.flatnonzero(np.concatenate([[True], frame[1:] != frame[:-1]]))
    sizes = np.diff(np.append(first, rows.size))
    cum_ge = np.cumsum(ge)
    cum_ge -= np.repeat(cum_ge[first] - ge[first], sizes)
    t0 = np.flatnonzero(ge & (cum_ge == top_k))  # one per key frame, in key-frame order
    upto = np.arange(rows.size) <= np.repeat(t0, sizes)
    held = tied & upto
    evict = np.add.reduceat((above & ~upto).astype(np.int64), first)  # (frames,)
    h = np.flatnonzero(held)
    b = boxes[rows[h]]
    order = h[np.lexsort((b[:, 2], b[:, 3], b[:, 0], b[:, 1], det.labels[rows[h]], frame[h]))]
    group = np.searchsorted(first, order, side="right") - 1
    group_start = np.searchsorted(group, np.arange(first.size))
    position = np.arange(order.size) - group_start[group]
    held[order[position < evict[group]]] = False
    keep[rows] = above | held


def _equal_score_groups(det: BoxTable, selected: np.ndarray) -> Tuple[np.ndarray, int]:
    """
    Among ``selected`` (grouped by key frame, descending score): key frames holding two rows of
    the same class and score with different boxes (their order matters), and the number of rows
    that exactly repeat another one.
    """
    kf, sc = det.keyframe[selected], det.scores[selected]
    same = (kf[1:] == kf[:-1]) & (sc[1:] == sc[:-1])
    if not same.any():
        return np.zeros(0, dtype=np.int64), 0
    idx = np.flatnonzero(same)
    r = selected[np.unique(np.concatenate([idx, idx + 1]))]  # rows in equal-score runs
    b = det.boxes[r]
    o = r[np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], det.labels[r], det.scores[r],
                      det.keyframe[r]))]
    same_class = ((det.keyframe[o][1:] == det.keyframe[o][:-1])
                  & (det.scores[o][1:] == det.scores[o][:-1])
                  & (det.labels[o][1:] == det.labels[o][:-1]))
    same_box = (det.boxes[o][1:] == det.boxes[o][:-1]).all(axis=1)
    ambiguous = np.unique(det.keyframe[o][1:][same_class & ~same_box])
    return ambiguous, int((same_class & same_box).sum())


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


# Boxes are normalized x1, y1, x2, y2. An unclipped detector box may stick out of the frame a bit;
# a coordinate more than half a frame outside [0, 1] cannot be normalized (pixels, or w / h > 1).
BOX_MARGIN = 0.5


def _xywh_hint(boxes: np.ndarray) -> str:
    inverted = (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])
    if boxes.shape[0] and inverted.mean() > 0.2:
        return (f"; {100 * inverted.mean():.0f}% of the rows have x2 < x1 or y2 < y1: are the "
                "boxes x, y, width, height? The format is x1, y1, x2, y2")
    return ""


def check_boxes_and_scores(table: BoxTable, what: str) -> None:
    """
    Refuse values that cannot be right: NaN / infinite scores or coordinates, and boxes outside
    [0, 1] by more than ``BOX_MARGIN`` (pixels, or x, y, width, height); coordinates just outside
    [0, 1] are scored as written, with a warning. Raises ValueError naming the file, the first
    line and the number of such rows.
    """
    b = table.boxes
    if what == "detection":
        bad = ~np.isfinite(table.scores)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{table.source}, line {int(table.lines[i])}: score {table.scores[i]} is not a "
                f"finite number; {int(bad.sum())} such row(s) (NaN / inf scores would take top-50 "
                "slots and change other classes' AP)"
            )
    bad = ~np.isfinite(b).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{table.source}, line {int(table.lines[i])}: {what} box {b[i].tolist()} "
                         f"is not finite; {int(bad.sum())} such row(s)")
    outside = ((b < -BOX_MARGIN) | (b > 1 + BOX_MARGIN)).any(axis=1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        kind = "pixel coordinates?" if np.abs(b).max() > 2 else "x, y, width, height?"
        raise ValueError(
            f"{table.source}, line {int(table.lines[i])}: {what} box {b[i].tolist()} is outside "
            f"[0, 1]; {int(outside.sum())} such row(s), largest |coordinate| {np.abs(b).max():g} ({kind} "
            "AVA boxes are x1, y1, x2, y2 normalized by the frame width and height)"
        )
    near = ((b < 0) | (b > 1)).any(axis=1)
    if near.any():
        logger.warning(f"{table.source}: {int(near.sum())} {what} row(s) with coordinates outside "
                       f"[0, 1] (e.g. line {int(table.lines[np.flatnonzero(near)[0]])}); scored as "
                       "written (official rule)")


def _warn_duplicate_groundtruth(gt: BoxTable) -> None:
    b = gt.boxes
    o = np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], gt.labels, gt.keyframe))
    same = (gt.keyframe[o][1:] == gt.keyframe[o][:-1]) & (gt.labels[o][1:] == gt.labels[o][:-1]) & (
        b[o][1:] == b[o][:-1]).all(axis=1)
    if same.any():
        logger.warning(
            f"{gt.source}: {int(same.sum())} ground-truth row(s) repeat the box and class of "
            f"another row of the same key frame (e.g. line {int(gt.lines[o[1:][same][0]])}); each "
            "counts as an instance and only one copy can be matched (official rule)"
        )


def _check_keyframes_match(det_keys: list, gt_keys: list, det_source: str, gt_source: str):
    """No detection key frame in the ground truth: an error with a diagnosis; some: a warning."""
    if not det_keys:
        logger.warning(f"{det_source}: no detection rows to evaluate; every AP is 0")
        return
    gt_set = set(gt_keys)
    missing = sum(k not in gt_set for k in det_keys)
    if missing == 0:
        return
    if missing < len(det_keys):
        logger.warning(
            f"{det_source}: {missing} of {len(det_keys)} detection key frames are not in the "
            f"ground truth ({gt_source}); their detections count as false positives (official rule)"
        )
        return
    raise ValueError(
        f"{det_source}: none of its {len(det_keys)} key frames (video_id, timestamp) is in the "
        f"ground truth {gt_source} ({len(gt_keys)} key frames), so every detection would be a "
        f"false positive. {_mismatch_hint(det_keys, gt_keys)}"
    )


def _mismatch_hint(det_keys: list, gt_keys: list) -> str:
    det_videos = sorted({v for v, _ in det_keys})
    gt_videos = sorted({v for v, _ in gt_keys})
    common = set(det_videos) & set(gt_videos)
    if not common:
        def norm(v):
            return v.strip().strip("\ufeff\"'").rsplit(".", 1)[0].lower()

        near = {norm(v) for v in det_videos} & {norm(v) for v in gt_videos}
        hint = (" They match after stripping spaces / quotes / a file extension / case."
                if near else "")
        return (f"No video id in common: detections {det_videos[:3]}, ground truth "
                f"{gt_videos[:3]}.{hint}")
    gt_set = set(gt_keys)
    shifts = {d: sum((v, t + d) in gt_set for v, t in det_keys) for d in range(-60, 61) if d}
    best = max(shifts, key=shifts.get)
    if shifts[best]:
        return (f"{len(common)} video id(s) in common, but no timestamp: shifted by {best:+d} s, "
                f"{shifts[best]} key frames would match (timestamps are seconds, e.g. 0902).")
    v = sorted(common)[0]
    dt = sorted(t for u, t in det_keys if u == v)
    gtt = sorted(t for u, t in gt_keys if u == v)
    return (f"{len(common)} video id(s) in common, but no timestamp: {v!r} has detection "
            f"timestamps {dt[0]}..{dt[-1]}, ground-truth timestamps {gtt[0]}..{gtt[-1]}.")


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
    check_boxes_and_scores(groundtruth, "ground-truth")
    check_boxes_and_scores(detections, "detection")
    gt, gt_unmapped, gt_excluded = _filter(groundtruth, class_ids, excluded, "ground-truth")
    det, _, _ = _filter(detections, class_ids, excluded, "detection")
    if len(gt) == 0:
        raise ValueError(
            f"{groundtruth.source}: no ground-truth box left to evaluate, the frame-mAP is "
            f"undefined ({len(groundtruth)} row(s) in the file, {gt_unmapped} with action ids "
            f"outside the label map, {gt_excluded} on excluded key frames)"
        )
    _warn_duplicate_groundtruth(gt)

    # One key-frame id space for both files, key frames in detection first-appearance order
    # (the order the official evaluator visits them).
    det_keys = _keyframe_keys(det)
    gt_keys = _keyframe_keys(gt)
    _check_keyframes_match(det_keys, gt_keys, detections.source, groundtruth.source)
    index = {k: i for i, k in enumerate(det_keys)}
    for k in gt_keys:
        index.setdefault(k, len(index))
    gt_map = np.array([index[k] for k in gt_keys], dtype=np.int64)
    gt_kf = gt_map[gt.keyframe]

    rows, duplicates = _select_detections(det, top_k)
    if duplicates:
        logger.warning(
            f"{detections.source}: {duplicates} scored detection row(s) repeat another row exactly "
            "(key frame, box, class, score); every copy is scored (official rule), so copies of a "
            "true positive count as false positives and lower the AP"
        )
    b = det.boxes[rows]
    valid = (b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3])
    if not valid.all():
        logger.warning(
            f"{detections.source}: {int((~valid).sum())} detection row(s) with x1 >= x2 or "
            f"y1 >= y2 took top-{top_k} slots and were then dropped (official rule)"
            + _xywh_hint(det.boxes)
        )
    rows = rows[valid]
    tp = _match(gt, gt_kf, det, det.keyframe, rows)
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
