"""
UCF101-24 (split 1) as detectron2 dataset dicts: one dict per annotated key frame.

Two annotation sources (layout in ``datasets/README.md``):

* the widely shared ``UCF101v2-GT.pkl`` (dict with ``labels`` (24 names), ``gttubes``
  (video -> {0-based label: [(n, 5) arrays frame, x1, y1, x2, y2]}), ``nframes``,
  ``train_videos`` / ``test_videos`` (lists per split), ``resolution`` (video -> (h, w)));
* a plain CSV that :func:`ucf24_pickle_to_csv` writes from it, one row per box:
  ``video_id,frame,x1,y1,x2,y2,action_id,tube_id`` (1-based frame number, absolute pixels,
  ``action_id`` 1..24 = line number in ``classes.txt``).

A tube carries one action, so ``action_ids`` has one element and all 24 classes are mutually
exclusive (``pose_class_indices`` = all, i.e. one softmax).
"""
import csv
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..file_readers import frame_size, load_pickle
from ..formats.proposals import read_proposals
from ..layouts import resolve_path

__all__ = ["load_ucf24_instances", "register_ucf24_instances", "ucf24_pickle_to_csv"]

# UCF101 videos are 25 fps (UCF101 dataset paper, Soomro et al. 2012).
UCF24_FPS = 25.0

# video -> list of (action_id 1-based, tube_id, (n, 5) array [frame 1-based, x1, y1, x2, y2])
_Tubes = Dict[str, List[Tuple[int, int, np.ndarray]]]


def _read_pickle(path: str) -> dict:
    gt = load_pickle(path, "UCF101-24 annotation pickle")
    if not isinstance(gt, dict):
        raise ValueError(f"{path}: expected a dict (UCF101v2-GT.pkl layout), got {type(gt)}")
    for key in ("labels", "gttubes", "nframes", "train_videos", "test_videos", "resolution"):
        if key not in gt:
            raise KeyError(f"{path}: missing key {key!r} (expected UCF101v2-GT.pkl layout)")
    return gt


def _tubes_from_pickle(gt: dict, videos: List[str]) -> _Tubes:
    tubes: _Tubes = OrderedDict()
    for vid in videos:
        per_video = []
        for label, tube_list in sorted(gt["gttubes"][vid].items()):
            for arr in tube_list:
                per_video.append((int(label) + 1, len(per_video), np.asarray(arr, np.float64)))
        tubes[vid] = per_video
    return tubes


def ucf24_pickle_to_csv(pkl_path: str, out_dir: str, split: int = 1) -> None:
    """
    Write ``classes.txt``, ``train.csv`` and ``test.csv`` (rows
    ``video_id,frame,x1,y1,x2,y2,action_id,tube_id``) from ``UCF101v2-GT.pkl``.
    """
    gt = _read_pickle(pkl_path)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "classes.txt"), "w") as f:
        f.write("".join(f"{name}\n" for name in gt["labels"]))
    for part in ("train", "test"):
        tubes = _tubes_from_pickle(gt, list(gt[f"{part}_videos"][split - 1]))
        with open(os.path.join(out_dir, f"{part}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            for vid, per_video in tubes.items():
                for action_id, tube_id, arr in per_video:
                    for row in arr:
                        w.writerow([vid, int(row[0])] + [f"{v:.2f}" for v in row[1:5]]
                                   + [action_id, tube_id])


def _tubes_from_csv(path: str, num_classes: int) -> _Tubes:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"UCF101-24 annotation CSV not found: {path}")
    rows: Dict[str, Dict[Tuple[int, int], List[List[float]]]] = OrderedDict()
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            where = f"{path}, line {n}"
            if len(row) != 8:
                raise ValueError(
                    f"{where}: expected 8 columns video_id,frame,x1,y1,x2,y2,action_id,tube_id, "
                    f"got {len(row)}: {row}"
                )
            try:
                frame, action_id, tube_id = int(row[1]), int(row[6]), int(row[7])
                box = [float(v) for v in row[2:6]]
            except ValueError:
                raise ValueError(f"{where}: non-numeric field in {row}") from None
            if not 1 <= action_id <= num_classes:
                raise ValueError(f"{where}: action_id {action_id} is not in 1..{num_classes}")
            rows.setdefault(row[0], OrderedDict()).setdefault((tube_id, action_id), []).append(
                [frame] + box
            )
    return OrderedDict(
        (vid, [(a, t, np.asarray(v, np.float64)) for (t, a), v in per.items()])
        for vid, per in rows.items()
    )


def _video_info(frames: str, vid: str) -> Tuple[str, int, int, int]:
    """(frame_dir, num_frames, height, width) from the frame folder ``<frames>/<vid>/%05d.jpg``."""
    frame_dir = os.path.join(frames, vid)
    if not os.path.isdir(frame_dir):
        raise FileNotFoundError(f"frame folder of video {vid!r} not found: {frame_dir}")
    n = sum(1 for name in os.listdir(frame_dir) if name.endswith(".jpg"))
    h, w = frame_size(os.path.join(frame_dir, "00001.jpg"))
    return frame_dir, n, h, w


def load_ucf24_instances(
    annotations: str,
    frames: str,
    *,
    split: str = "train",
    split_index: int = 1,
    classes_file: Optional[str] = None,
    key_frame_stride: int = 1,
    proposals=None,
) -> List[dict]:
    """
    Load UCF101-24 key frames: every ``key_frame_stride``-th frame (frames 1, 1 + k, ...) on which
    at least one tube has a box.

    Args:
        annotations (str): ``UCF101v2-GT.pkl`` or a CSV written by :func:`ucf24_pickle_to_csv`.
        frames (str): folder with ``<video_id>/%05d.jpg`` (1-based).
        split (str): "train" or "test" (pickle only; a CSV holds one split).
        classes_file (str): ``classes.txt`` (CSV only).
        key_frame_stride (int): keep frames with ``(frame - 1) % key_frame_stride == 0``.
        proposals (str, FirstExisting or None): person detections of the key frames (all
            kept: the paper evaluates with every detector box), in any format of
            :mod:`acar_d2.data.formats.proposals` with ``timestamp`` = 1-based frame number and
            normalized boxes; None: empty proposals (training uses ground-truth boxes only).
    Returns:
        list[dict]: docs/ARCHITECTURE.md dataset dicts; ``timestamp`` is the 1-based frame number.
    """
    if annotations.endswith(".pkl"):
        gt = _read_pickle(annotations)
        tubes = _tubes_from_pickle(gt, list(gt[f"{split}_videos"][split_index - 1]))
    else:
        tubes = _tubes_from_csv(annotations, len(_read_classes(classes_file)))
    proposals = resolve_path(proposals)
    boxes_per_key = read_proposals(proposals) if proposals else {}
    dicts = []
    for vid, per_video in tubes.items():
        frame_dir, num_frames, h, w = _video_info(frames, vid)
        by_frame: Dict[int, List[dict]] = {}
        for action_id, tube_id, arr in per_video:
            for row in arr:
                frame = int(row[0])
                where = f"{annotations}: video {vid} tube {tube_id} frame {frame}"
                if not 1 <= frame <= num_frames:
                    raise ValueError(f"{where}: frame outside the video's {num_frames} frames")
                x1, y1, x2, y2 = (float(v) for v in row[1:5])
                if not (x1 < x2 and y1 < y2):
                    raise ValueError(f"{where}: degenerate box {[x1, y1, x2, y2]}")
                if (frame - 1) % key_frame_stride:
                    continue
                # UCF101-24 boxes sometimes overshoot the frame by a few pixels: clip them.
                box = [max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))]
                by_frame.setdefault(frame, []).append(
                    {"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "action_ids": [action_id],
                     "person_id": tube_id}
                )
        for frame in sorted(by_frame):
            dicts.append(
                {"video_id": vid, "timestamp": frame, "frame_dir": frame_dir,
                 "frame_template": "{:05d}.jpg", "video_file": None, "fps": UCF24_FPS,
                 "key_frame_index": frame - 1, "num_frames": num_frames, "height": h, "width": w,
                 "annotations": by_frame[frame],
                 "proposals": _scaled_proposals(boxes_per_key.get((vid, frame)), h, w)}
            )
    return dicts


def _scaled_proposals(arr: Optional[np.ndarray], h: int, w: int) -> Dict[str, np.ndarray]:
    """(R, 5) normalized [box, score] or None -> {"boxes": (R, 4) px, "scores": (R,)} float32."""
    arr = np.zeros((0, 5), np.float32) if arr is None else np.asarray(arr, np.float32)
    scale = np.array([w, h, w, h], dtype=np.float32)
    return {"boxes": arr[:, :4] * scale, "scores": arr[:, 4].copy()}


def _read_classes(path: Optional[str]) -> List[str]:
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"UCF101-24 classes file not found: {path}")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != 24:
        raise ValueError(f"{path}: expected 24 class names, got {len(names)}")
    return names


def register_ucf24_instances(
    name: str,
    annotations: str,
    frames: str,
    *,
    split: str = "train",
    classes_file: Optional[str] = None,
    key_frame_stride: int = 1,
    class_names: Optional[List[str]] = None,
    proposals=None,
) -> None:
    """Register a UCF101-24 split (metadata ``evaluator_type="ucf24"``); arguments as
    :func:`load_ucf24_instances`."""
    DatasetCatalog.register(
        name,
        lambda: load_ucf24_instances(
            annotations, frames, split=split, classes_file=classes_file,
            key_frame_stride=key_frame_stride, proposals=proposals,
        ),
    )
    meta = MetadataCatalog.get(name)
    # A class subset (DATASETS.CLASSES) drops the boxes of other classes: every box has one action.
    meta.set(evaluator_type="ucf24", gt_file=annotations, fps=UCF24_FPS, unlabeled_persons="drop")
    if class_names is not None:
        k = len(class_names)
        meta.set(
            action_classes=list(class_names),
            action_ids=list(range(1, k + 1)),
            # One action per tube: the classes are mutually exclusive (one softmax).
            pose_class_indices=list(range(k)),
            class_groups={"pose": list(range(k)), "person_object": [], "person_person": []},
        )
