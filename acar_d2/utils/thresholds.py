"""
Per-class score thresholds: the file ``tools/calibrate_thresholds.py`` writes and the demo reads,
``{"default": 0.3, "thresholds": {"stand": 0.42, ...}, "calibration": {...}}``.
"""
import json
import math
import os
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["read_thresholds", "thresholds_document"]


def thresholds_document(class_names: Sequence[str], thresholds: Sequence[float],
                        default: float, calibration: Optional[dict] = None) -> dict:
    """The thresholds file content: ``{"default": d, "thresholds": {name: t}, "calibration": ...}``."""
    doc = {"default": float(default),
           "thresholds": {str(n): float(t) for n, t in zip(class_names, thresholds)}}
    if calibration is not None:
        doc["calibration"] = calibration
    return doc


def read_thresholds(path: str, class_names: Sequence[str], default: float) -> np.ndarray:
    """
    Per-class thresholds from a JSON file ``{"default": 0.3, "thresholds": {"stand": 0.42, ...}}``
    (``tools/calibrate_thresholds.py`` writes it). Classes not listed take the file's ``default``,
    else ``default``.

    Returns:
        ndarray (K,) float64, index-aligned with ``class_names``.
    Raises:
        FileNotFoundError / ValueError naming the file (and the class or value at fault).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"thresholds file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"thresholds file {path}: not a JSON document: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("thresholds"), dict):
        raise ValueError(f"thresholds file {path}: expected {{\"thresholds\": {{class name: score}}, "
                         "\"default\": score}")
    base = doc.get("default", default)
    values: Dict[str, float] = {}
    for name, value in list(doc["thresholds"].items()) + [("default", base)]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"thresholds file {path}: threshold of {name!r} is {value!r}, not a "
                             "number in [0, 1]")
        values[name] = float(value)
    unknown = sorted(set(doc["thresholds"]) - set(class_names))
    if unknown:
        raise ValueError(f"thresholds file {path}: unknown class name(s) {unknown}; the model's "
                         f"classes are {list(class_names)}")
    return np.array([values.get(n, values["default"]) for n in class_names], np.float64)
