"""
ACAR-Net's annotation / detection pickles: ``(records, idx_to_class)``.

The layout, as ACAR-Net's own ``datasets/ava.py`` reads it (``self.data, self.idx_to_class =
pickle.load(f)``) and its ``main.py`` writes predictions from it (``idx_to_class[cls]['id']``):

- ``records``: a list with one dict per key frame::

      {"video": str, "time": int (seconds), "start_frame": int, "n_frames": int,
       "mid_frame": int, "format_str": "image_%06d.jpg", "frame_rate": float,
       "labels": [{"bounding_box": [x1, y1, x2, y2] (normalized), "label": [class index, ...],
                   "person_id": [int, ...]}, ...]}

  ``start_frame`` / ``mid_frame`` are 1-based numbers of the ``format_str`` frames (ACAR-Net
  extracts frames 1, 2, ... from second 900 at 30 fps); ``label`` holds 0-based indices into
  ``idx_to_class``.
- ``idx_to_class``: indexable by class index (a list, or a dict int -> entry); each entry a dict
  with ``"id"`` (the AVA action id) and ``"name"``.

Assumptions (stated because the official release documents no more than the reader above):
detection pickles (``ava_val_v2.2_fair_0.85.pkl``, ``..._with_fair_0.9.pkl``) use the same layout,
their boxes already thresholded; a per-box ``"score"`` is read when present, else 1.0. A
``person_id`` list holds the person of the box (its first element is used; -1 when empty).
Only ``video``, ``time`` and ``labels`` are needed here: clip windows are recomputed from the
time (acar_d2's convention equals ACAR-Net's on AVA: key frame of second t = 0-based frame
``(t - 900) * 30``); ``start_frame`` / ``n_frames`` / ``mid_frame`` are written (for ACAR-Net)
as ``mid = (t - 900) * fps + 1``, a window of ``n_frames`` frames centred on it.

:func:`acar_pickle_to_csv` / :func:`csv_to_acar_pickle` convert between these pickles and AVA
annotation CSVs (read and written by :mod:`ava_eval.csv_io`). No detectron2 import.
"""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ava_eval.csv_io import AVAKey, read_box_csv, write_ava_csv
from ava_eval.label_map import LabelMap, read_label_map
from ..file_readers import load_pickle

__all__ = ["ACARRecords", "read_acar_pickle", "is_acar_pickle_object", "acar_records_to_rows",
           "acar_records_to_proposals", "make_acar_records", "idx_to_class_from_label_map",
           "acar_pickle_to_csv", "csv_to_acar_pickle"]

# (records, idx_to_class) as loaded
ACARRecords = Tuple[List[dict], object]


def is_acar_pickle_object(obj) -> bool:
    """True when ``obj`` has the ``(list of key-frame dicts, idx_to_class)`` shape."""
    return (isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], list)
            and all(isinstance(r, dict) for r in obj[0][:5]))


def read_acar_pickle(path, obj=None) -> ACARRecords:
    """
    Load and check an ACAR-Net pickle.

    Args:
        path: the ``.pkl`` file (also used in messages).
        obj: the already unpickled object (skips loading).
    Returns:
        (records, idx_to_class) with every record checked for ``video``, ``time``, ``labels``
        and every label for a 4-number ``bounding_box``.
    Raises:
        ValueError naming the file and the record index (0-based, as ``records[i]``).
    """
    if obj is None:
        obj = load_pickle(path, "ACAR-Net annotation pickle")
    if not is_acar_pickle_object(obj):
        raise ValueError(f"{path}: not an ACAR-Net pickle (expected a (list of key-frame dicts, "
                         f"idx_to_class) pair, got {type(obj).__name__})")
    records, idx_to_class = obj
    for i, r in enumerate(records):
        where = f"{path}: records[{i}]"
        for key in ("video", "time", "labels"):
            if key not in r:
                raise ValueError(f"{where} lacks {key!r} (has {sorted(r)})")
        try:
            int(r["time"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: time {r['time']!r} is not an integer") from None
        for j, lab in enumerate(r["labels"]):
            box = lab.get("bounding_box") if isinstance(lab, dict) else None
            if box is None or len(box) != 4:
                raise ValueError(f"{where}['labels'][{j}]: needs 'bounding_box' [x1, y1, x2, y2]")
    return records, idx_to_class


def _class_id(idx_to_class, index: int, where: str) -> int:
    try:
        entry = idx_to_class[index]
    except (IndexError, KeyError, TypeError):
        raise ValueError(f"{where}: class index {index} is not in idx_to_class") from None
    if isinstance(entry, dict):
        return int(entry["id"])
    return int(entry)


def _person_id(lab: dict) -> int:
    pid = lab.get("person_id", -1)
    if isinstance(pid, (list, tuple, np.ndarray)):
        return int(pid[0]) if len(pid) else -1
    return int(pid)


def acar_records_to_rows(path, records: Sequence[dict], idx_to_class) -> List[tuple]:
    """
    Ground-truth rows ``(video_id, timestamp, x1, y1, x2, y2, action_id, person_id)`` of an
    ACAR-Net annotation pickle, one per (box, label), AVA ids through ``idx_to_class``.
    """
    rows = []
    for i, r in enumerate(records):
        vid, ts = str(r["video"]), int(r["time"])
        for j, lab in enumerate(r["labels"]):
            box = [float(v) for v in lab["bounding_box"]]
            for index in lab.get("label", []):
                cid = _class_id(idx_to_class, int(index), f"{path}: records[{i}]['labels'][{j}]")
                rows.append((vid, ts, *box, cid, _person_id(lab)))
    return rows


def acar_records_to_proposals(records: Sequence[dict]) -> Dict[AVAKey, np.ndarray]:
    """Person boxes of each key frame: {(video_id, timestamp): float32 (R, 5) x1,y1,x2,y2,score}."""
    out: Dict[AVAKey, np.ndarray] = {}
    for r in records:
        rows = [[float(v) for v in lab["bounding_box"]] + [float(lab.get("score", 1.0))]
                for lab in r["labels"]]
        out[(str(r["video"]), int(r["time"]))] = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    return out


def idx_to_class_from_label_map(lmap: LabelMap) -> List[dict]:
    """ACAR-Net's ``idx_to_class``: ``[{"name": ..., "id": ...}]`` in label-map order."""
    return [{"name": n, "id": int(c)} for c, n in zip(lmap.ids, lmap.names)]


def make_acar_records(
    boxes: Dict[AVAKey, List[dict]],
    *,
    fps: float = 30.0,
    first_second: int = 900,
    n_frames: int = 91,
    format_str: str = "image_%06d.jpg",
    num_frames_of: Optional[Dict[str, int]] = None,
) -> List[dict]:
    """
    Build ACAR-Net records from per-key-frame label dicts.

    Args:
        boxes: (video_id, timestamp) -> list of {"bounding_box", "label" (class indices),
            "person_id" (list), optional "score"}; key frames keep this order.
        n_frames: clip window written (``start_frame`` = mid - n_frames // 2, at least 1).
        num_frames_of: video -> frame count, to clip the window at the end (optional).
    """
    records = []
    for (vid, ts), labels in boxes.items():
        mid = int(round((ts - first_second) * fps)) + 1
        start = max(1, mid - n_frames // 2)
        n = n_frames
        if num_frames_of and vid in num_frames_of:
            n = max(1, min(n, num_frames_of[vid] - start + 1))
        records.append({"video": vid, "time": int(ts), "start_frame": start, "n_frames": n,
                        "mid_frame": mid, "format_str": format_str, "frame_rate": float(fps),
                        "labels": list(labels)})
    return records


def acar_pickle_to_csv(pkl, csv_out, overwrite: bool = False) -> int:
    """ACAR-Net annotation pickle -> AVA annotation CSV (AVA ids via its ``idx_to_class``)."""
    records, idx_to_class = read_acar_pickle(pkl)
    return write_ava_csv(acar_records_to_rows(pkl, records, idx_to_class), csv_out, overwrite)


def csv_to_acar_pickle(csv_in, label_map, pkl_out, *, fps: float = 30.0, first_second: int = 900,
                       overwrite: bool = False) -> int:
    """
    AVA annotation CSV -> ACAR-Net annotation pickle ``(records, idx_to_class)``; class indices
    follow the label map (ascending ids). Rows with ids outside the label map are dropped (the
    box is kept). Returns the number of key frames.
    """
    if os.path.exists(pkl_out) and not overwrite:
        raise FileExistsError(f"{pkl_out} exists; choose another output or pass overwrite=True")
    lmap = read_label_map(label_map, require_groups=False)
    index = {c: i for i, c in enumerate(lmap.ids)}
    table = read_box_csv(csv_in, groundtruth=True, num_columns=8)
    frames: "OrderedDict[tuple, OrderedDict]" = OrderedDict()
    for kf, box, action, pid in zip(table.keyframe.tolist(), table.boxes.tolist(),
                                    table.labels.tolist(), table.scores.tolist()):
        per_box = frames.setdefault(table.keyframes[kf], OrderedDict())
        lab = per_box.setdefault((tuple(box), int(pid)), {"bounding_box": list(box), "label": [],
                                                          "person_id": [int(pid)]})
        if action in index and index[action] not in lab["label"]:
            lab["label"].append(index[action])
    records = make_acar_records({k: list(v.values()) for k, v in frames.items()}, fps=fps,
                                first_second=first_second)
    with open(pkl_out, "wb") as f:
        pickle.dump((records, idx_to_class_from_label_map(lmap)), f)
    return len(records)
