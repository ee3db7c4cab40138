"""
Format-exact miniature AVA trees as PySlowFast and ACAR-Net users have them on disk: leading-dash
video ids, 4-digit timestamps, frames at 30 fps from second 900 (key frames 902 and 903 only, so
each video holds 100 tiny frames), no PySlowFast frame lists.
"""
import pickle
from pathlib import Path
from typing import Dict

import numpy as np
from PIL import Image

from ava_eval.label_map import AVA_LABEL_MAP_FILE

FPS, FIRST_SECOND, NUM_FRAMES = 30, 900, 100
VIDEOS = {"-FaXLcSFjUI": (12, 16), "_145Aa_xkuE": (16, 12)}
# video, timestamp, x1, y1, x2, y2, action_id (AVA ids), person_id
GT = [
    ("-FaXLcSFjUI", 902, 0.1, 0.2, 0.5, 0.9, 12, 0),
    ("-FaXLcSFjUI", 902, 0.1, 0.2, 0.5, 0.9, 80, 0),
    ("-FaXLcSFjUI", 902, 0.6, 0.1, 0.9, 0.8, 11, 1),
    ("-FaXLcSFjUI", 903, 0.1, 0.2, 0.5, 0.9, 2, 0),  # id 2: not evaluated, dropped quietly
    ("_145Aa_xkuE", 903, 0.0, 0.0, 1.0, 1.0, 14, 2),
]
# proposals: key -> [x1, y1, x2, y2, score]
PROPOSALS = {
    ("-FaXLcSFjUI", 902): [[0.1, 0.2, 0.5, 0.875, 0.96], [0.6, 0.1, 0.9, 0.8, 0.5]],
    ("_145Aa_xkuE", 903): [[0.0, 0.0, 1.0, 1.0, 0.99]],
    ("_145Aa_xkuE", 902): [[0.2, 0.2, 0.4, 0.4, 0.9]],  # excluded key frame
}
EXCLUDED = [("_145Aa_xkuE", "0902")]


def _exclusions(ann: Path) -> None:
    for split in ("train", "val"):
        _csv(ann / f"ava_{split}_excluded_timestamps_v2.2.csv", EXCLUDED)


def _frames(root: Path, naming: str) -> None:
    for vid, (h, w) in VIDEOS.items():
        (root / vid).mkdir(parents=True)
        img = Image.fromarray(np.full((h, w, 3), 90, dtype=np.uint8))
        for k in range(1, NUM_FRAMES + 1):
            img.save(root / vid / naming.format(vid=vid, k=k))


def _csv(path: Path, rows) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return str(path)


def _gt_csv(path: Path) -> str:
    return _csv(path, [(v, f"{t:04d}", *b, a, p) for v, t, *b, a, p in
                       [(r[0], r[1], *r[2:6], r[6], r[7]) for r in GT]])


def _label_map(ann: Path) -> None:
    text = AVA_LABEL_MAP_FILE.read_text()
    (ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt").write_text(text)


def make_pyslowfast_tree(root: Path) -> Dict[str, str]:
    """``ava/frames/<vid>/<vid>_%06d.jpg``, PySlowFast's pre-prepared person-box CSVs."""
    ava = root / "ava"
    ann = ava / "annotations"
    _frames(ava / "frames", "{vid}_{k:06d}.jpg")
    ann.mkdir(parents=True)
    _label_map(ann)
    _exclusions(ann)
    _gt_csv(ann / "ava_train_v2.2.csv")
    _gt_csv(ann / "ava_val_v2.2.csv")
    rows = [(v, f"{t:04d}", *r[:4], "", r[4]) for (v, t), rs in PROPOSALS.items() for r in rs]
    # The include_negative train file has one row per (box, action): repeated boxes.
    train_rows = rows + [rows[0][:6] + (12, rows[0][7])]
    _csv(ann / "ava_detection_train_boxes_and_labels_include_negative_v2.2.csv", train_rows)
    _csv(ann / "person_box_67091280_iou90" / "ava_detection_val_boxes_and_labels.csv", rows)
    return {"root": str(root), "ann": str(ann)}


def make_acar_tree(root: Path) -> Dict[str, str]:
    """``ava/data/<vid>/image_%06d.jpg``, ACAR-Net's annotation and detection pickles."""
    from ava_eval.label_map import ava_class_list
    from acar_d2.data.formats import idx_to_class_from_label_map, make_acar_records

    ava = root / "ava"
    ann = ava / "annotations"
    _frames(ava / "data", "image_{k:06d}.jpg")
    ann.mkdir(parents=True)
    _label_map(ann)
    _exclusions(ann)
    _gt_csv(ann / "ava_train_v2.2.csv")
    _gt_csv(ann / "ava_val_v2.2.csv")
    lmap = ava_class_list()
    idx_to_class = idx_to_class_from_label_map(lmap)
    index = {c: i for i, c in enumerate(lmap.ids)}
    # ground-truth pickle: per (key frame, box) the class indices
    gt: Dict[tuple, Dict[tuple, dict]] = {}
    for v, t, x1, y1, x2, y2, a, p in GT:
        lab = gt.setdefault((v, t), {}).setdefault(
            (x1, y1, x2, y2), {"bounding_box": [x1, y1, x2, y2], "label": [], "person_id": [p]})
        if a in index:
            lab["label"].append(index[a])
    gt_records = make_acar_records({k: list(v.values()) for k, v in gt.items()})
    with open(ann / "ava_val_v2.2_gt.pkl", "wb") as f:
        pickle.dump((gt_records, idx_to_class), f)
    det = {k: [{"bounding_box": r[:4], "label": [], "person_id": [], "score": r[4]} for r in rs]
           for k, rs in PROPOSALS.items()}
    for name in ("ava_val_v2.2_fair_0.85.pkl", "ava_train_v2.2_with_fair_0.9.pkl"):
        with open(ann / name, "wb") as f:
            pickle.dump((make_acar_records(det), idx_to_class), f)
    return {"root": str(root), "ann": str(ann), "gt_pkl": str(ann / "ava_val_v2.2_gt.pkl")}
