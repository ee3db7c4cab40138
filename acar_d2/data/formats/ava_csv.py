"""
Writing AVA annotation CSVs and converting them to / from ACAR-Net annotation pickles.

Rows are ``(video_id, timestamp, x1, y1, x2, y2, action_id, person_id)`` with normalized boxes
(the layout :func:`ava_eval.ava_format.read_box_csv` reads). No detectron2 import.
"""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from typing import Iterable

from ava_eval.ava_format import read_box_csv, read_label_map
from .acar_pickle import (
    acar_records_to_rows,
    idx_to_class_from_label_map,
    make_acar_records,
    read_acar_pickle,
)

__all__ = ["write_ava_csv", "acar_pickle_to_csv", "csv_to_acar_pickle"]


def write_ava_csv(rows: Iterable[tuple], path, overwrite: bool = False) -> int:
    """
    Write annotation rows (timestamps as 4 digits, coordinates ``%.6g``); returns the row count.
    Raises FileExistsError when ``path`` exists and ``overwrite`` is False. Its folder is created.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for vid, ts, x1, y1, x2, y2, action, pid in rows:
            f.write(f"{vid},{int(ts):04d},{x1:.6g},{y1:.6g},{x2:.6g},{y2:.6g},{int(action)},{int(pid)}\n")
            n += 1
    return n


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
