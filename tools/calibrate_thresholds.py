#!/usr/bin/env python
"""
Per-class score thresholds for the demo's labels, from validation predictions and ground truth.

    python tools/calibrate_thresholds.py --groundtruth val.csv --detections predictions.csv \\
        --labelmap label_map.pbtxt [--exclusions val_excluded_timestamps.csv] --output thresholds.json
    python tools/demo.py ... --thresholds thresholds.json

For each class, every detection row (AVA submission CSV: ``video_id,timestamp,x1,y1,x2,y2,
action_id,score``) is matched to the ground truth of its key frame and class: in descending score,
each takes the free ground-truth box of highest IoU if that IoU is >= ``--iou`` (0.5, as the AVA
evaluation). The threshold is the score that maximises F1 = 2PR / (P + R) when a label is drawn for
every row scoring at or above it (ties: the higher threshold, i.e. fewer false labels). Classes
without ground truth or detections get ``--default``. Unlike the AVA mAP, no top-50 cap per key
frame applies: the demo draws every box.

The output (read by ``tools/demo.py --thresholds``)::

    {"default": 0.5, "thresholds": {"stand": 0.41, ...},
     "calibration": {"stand": {"f1": .., "precision": .., "recall": .., "num_gt": .., "num_detections": ..}}}
"""
import argparse
import json
import os
import sys
from typing import Dict, Optional, Tuple

import numpy as np

from ava_eval.csv_io import BoxTable, read_box_csv, read_exclusions
from ava_eval.label_map import read_label_map
from acar_d2.engine.cli import add_debug_flag, one_line, run_cli
from acar_d2.utils.thresholds import thresholds_document

IOU = 0.5


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, 4) x (G, 4) -> (P, G) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_class(gt: BoxTable, det: BoxTable, class_id: int, excluded, iou: float = IOU
                ) -> Tuple[np.ndarray, np.ndarray, int]:
    """
    Greedy matching of one class.

    Returns:
        scores (ndarray): (D,) detection scores of the class (excluded key frames dropped),
        tp (ndarray): (D,) bool, matched to a ground-truth box,
        num_gt (int): ground-truth boxes of the class.
    """
    def rows(table, keep_label):
        sel = table.labels == keep_label
        keys = [table.keyframes[k] for k in table.keyframe[sel]]
        keep = np.array([(v, int(t)) not in excluded for v, t in keys], dtype=bool)
        idx = np.flatnonzero(sel)[keep] if len(keys) else np.zeros(0, np.int64)
        return idx, [keys[i] for i in np.flatnonzero(keep)]

    g_idx, g_keys = rows(gt, class_id)
    d_idx, d_keys = rows(det, class_id)
    scores = det.scores[d_idx]
    tp = np.zeros(len(d_idx), dtype=bool)
    by_key: Dict[Tuple[str, int], list] = {}
    for i, k in enumerate(g_keys):
        by_key.setdefault((k[0], int(k[1])), []).append(g_idx[i])
    det_by_key: Dict[Tuple[str, int], list] = {}
    for i, k in enumerate(d_keys):
        det_by_key.setdefault((k[0], int(k[1])), []).append(i)
    for key, d_local in det_by_key.items():
        g = by_key.get(key)
        if not g:
            continue
        d_local = np.array(d_local)[np.argsort(-scores[d_local], kind="stable")]
        ious = _iou_matrix(det.boxes[d_idx[d_local]], gt.boxes[np.array(g)])
        free = np.ones(len(g), dtype=bool)
        for r, i in enumerate(d_local):
            cand = np.where(free, ious[r], -1.0)
            best = int(np.argmax(cand))
            if cand[best] >= iou:
                free[best] = False
                tp[i] = True
    return scores, tp, len(g_idx)


def best_f1_threshold(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> Optional[dict]:
    """
    The F1-maximising threshold (labels drawn for scores >= it); None without ground truth or
    detections.
    """
    if num_gt == 0 or len(scores) == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], tp[order]
    cum_tp = np.cumsum(t)
    n = np.arange(1, len(s) + 1)
    # Only the last row of a run of equal scores is a reachable cut (>= includes all of them).
    last = np.r_[s[1:] != s[:-1], True]
    precision = cum_tp / n
    recall = cum_tp / num_gt
    f1 = np.where(cum_tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    f1 = np.where(last, f1, -1.0)
    best = int(np.flatnonzero(f1 == f1.max())[0])  # first = highest threshold among ties
    return {"threshold": float(s[best]), "f1": float(f1[best]), "precision": float(precision[best]),
            "recall": float(recall[best]), "num_gt": int(num_gt), "num_detections": int(len(s))}


def calibrate(groundtruth: str, detections: str, labelmap: str, exclusions: Optional[str] = None,
              default: float = 0.5, iou: float = IOU) -> dict:
    """The thresholds document (see the module docstring)."""
    label_map = read_label_map(labelmap, require_groups=False)
    gt = read_box_csv(groundtruth, groundtruth=True)
    det = read_box_csv(detections)
    excluded = read_exclusions(exclusions)
    thresholds, stats = [], {}
    for cid, name in zip(label_map.ids, label_map.names):
        result = best_f1_threshold(*match_class(gt, det, cid, excluded, iou))
        thresholds.append(default if result is None else result["threshold"])
        stats[name] = result or {"threshold": default, "note": "no ground truth or no detection"}
    return thresholds_document(label_map.names, thresholds, default, calibration=stats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tools/calibrate_thresholds.py",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groundtruth", "-g", required=True)
    parser.add_argument("--detections", "-d", required=True)
    parser.add_argument("--labelmap", "-l", required=True)
    parser.add_argument("--exclusions", "-e")
    parser.add_argument("--output", "-o", required=True, help="thresholds JSON to write")
    parser.add_argument("--default", type=float, default=0.5,
                        help="threshold of classes that cannot be calibrated")
    parser.add_argument("--iou", type=float, default=IOU)
    parser.add_argument("--overwrite", action="store_true")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if os.path.exists(args.output) and not args.overwrite:
        print(f"{parser.prog}: error: --output {args.output} exists (use --overwrite)",
              file=sys.stderr)
        return 2
    inputs = [p for p in (args.groundtruth, args.detections, args.labelmap, args.exclusions) if p]
    if any(os.path.exists(p) and os.path.exists(args.output) and os.path.samefile(p, args.output)
           for p in inputs):
        print(f"{parser.prog}: error: --output {args.output} is one of the inputs",
              file=sys.stderr)
        return 2
    try:
        doc = calibrate(args.groundtruth, args.detections, args.labelmap, args.exclusions,
                        args.default, args.iou)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"{parser.prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    with open(args.output, "w") as f:
        json.dump(doc, f, indent=1)
    width = max(len(n) for n in doc["thresholds"])
    for name, st in doc["calibration"].items():
        extra = (f"F1 {st['f1']:.3f} (P {st['precision']:.3f}, R {st['recall']:.3f}, "
                 f"{st['num_gt']} GT)" if "f1" in st else st["note"])
        print(f"{name:>{width}s}: {doc['thresholds'][name]:.4f}  {extra}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    run_cli(main, prog="tools/calibrate_thresholds.py")
