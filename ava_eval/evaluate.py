"""
Official AVA frame-mAP@0.5 of a detection CSV: :func:`evaluate_files` and :func:`summarize`, the
library of the command line ``acar-ava-eval`` (``python -m ava_eval``, ``ava_eval/cli.py``).

The command prints a per-class table and, as its last line, ``frame-mAP@0.5 (%): <value>``: like
``train_net.py``, ``AVAEvaluator`` and ``eval_results.json``, AP is in **percent** and classes are
keyed by **name**. ``--json`` writes ``{"frame_mAP": %, "per_class": {name: % or null},
"per_group": {group: %}, "class_ids": {name: id}, "num_gt": {name: n}, "num_detections": {name: n},
"units": "percent"}``; ``null``: a class without ground truth (not in the mean). ``--plot`` draws
:func:`reporting.plot_per_class_ap`, coloured by class group; with ``--train-counts`` the classes
are sorted by their training-sample count, shown under each name.

Like the whole ``ava_eval`` package, NumPy and the standard library only (matplotlib for ``--plot``).
"""
import math
from collections import Counter
from typing import Dict, List, Optional

from .csv_io import read_box_csv, read_exclusions
from .label_map import read_label_map
from .frame_map import FrameMAPResult, frame_map
from .reporting import group_means

__all__ = ["evaluate_files", "summarize", "class_keys"]


def evaluate_files(groundtruth: str, detections: str, labelmap: str,
                   exclusions: Optional[str] = None) -> FrameMAPResult:
    """Read the official evaluation inputs and compute the frame-mAP (AP as fractions)."""
    return frame_map(
        read_box_csv(groundtruth, groundtruth=True),
        read_box_csv(detections),
        read_label_map(labelmap, require_groups=False),
        read_exclusions(exclusions),
    )


def class_keys(label_map) -> Dict[int, str]:
    """id -> JSON key: the class name, made unique with its id where two classes share a name."""
    seen = Counter(label_map.values())
    return {c: (n if seen[n] == 1 else f"{n} (id {c})") for c, n in sorted(label_map.items())}


def summarize(result: FrameMAPResult, label_map) -> dict:
    """The ``--json`` dict of a result (percent, classes by name; see the module docstring)."""
    names = class_keys(label_map)
    per_class = {names[c]: (None if math.isnan(v) else 100.0 * v)
                 for c, v in sorted(result.per_class_AP.items())}
    groups: Dict[str, List[str]] = {}
    for c, g in zip(label_map, getattr(label_map, "groups", [None] * len(label_map))):
        if g is not None:
            groups.setdefault(g, []).append(names[c])
    return {
        "frame_mAP": 100.0 * result.mAP,
        "per_class": per_class,
        "per_group": group_means(per_class, groups),
        "class_ids": {names[c]: c for c in names},
        "num_gt": {names[c]: n for c, n in sorted(result.num_gt.items())},
        "num_detections": {names[c]: n for c, n in sorted(result.num_detections.items())},
        "units": "percent",
    }
