"""
Person-proposal files in the three formats users have, read into one table and written back.

===================  ====================================================================
format               layout
===================  ====================================================================
``pyslowfast_csv``   PySlowFast / official AVA CSV ``video_id,timestamp,x1,y1,x2,y2,action,score``
                     (action empty or any id; one row per box, or per box and action)
``mmaction_pkl``     MMAction2's dense-proposal pickle: dict ``"video_id,%04d"`` -> (R, 5)
                     ``[x1, y1, x2, y2, score]`` (``dense_proposals_{train,val}.pkl``)
``acar_pkl``         ACAR-Net's ``(records, idx_to_class)`` pickle (:mod:`.acar_pickle`),
                     e.g. ``ava_val_v2.2_fair_0.85.pkl``
===================  ====================================================================

Every reader returns ``{(video_id, timestamp): float32 ndarray (R, 5)}`` with normalized
``x1, y1, x2, y2, score`` (the table ``load_ava_instances`` works with). Writers refuse to
overwrite an existing file unless asked. No detectron2 import.
"""
from __future__ import annotations

import os
import pickle
from typing import Dict, Optional

import numpy as np

from ava_eval.csv_io import AVAKey, read_predicted_boxes_csv
from ..file_readers import load_pickle, read_dense_proposals
from .acar_pickle import (
    acar_records_to_proposals,
    is_acar_pickle_object,
    make_acar_records,
    read_acar_pickle,
)

__all__ = ["PROPOSAL_FORMATS", "detect_proposal_format", "read_proposals", "write_proposals",
           "convert_proposals"]

PROPOSAL_FORMATS = ("pyslowfast_csv", "mmaction_pkl", "acar_pkl")
Proposals = Dict[AVAKey, np.ndarray]


def detect_proposal_format(path) -> str:
    """
    The format of a proposal file: ``.csv`` -> ``pyslowfast_csv``; a pickle is unpickled and
    told apart by its shape (dict -> ``mmaction_pkl``, (list, idx_to_class) -> ``acar_pkl``).
    """
    if str(path).endswith(".csv"):
        return "pyslowfast_csv"
    obj = load_pickle(path, "proposal file")
    if isinstance(obj, dict):
        return "mmaction_pkl"
    if is_acar_pickle_object(obj):
        return "acar_pkl"
    raise ValueError(f"{path}: unknown proposal pickle ({type(obj).__name__}); expected MMAction2's "
                     "dict 'video_id,%04d' -> (R, 5) or ACAR-Net's (list of dicts, idx_to_class)")


def read_proposals(path, fmt: Optional[str] = None) -> Proposals:
    """
    Read a proposal file of any of :data:`PROPOSAL_FORMATS` (``fmt`` None: detected).

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)] normalized x1, y1, x2, y2, score.
    """
    fmt = fmt or detect_proposal_format(path)
    if fmt == "pyslowfast_csv":
        out = read_predicted_boxes_csv(path)
    elif fmt == "mmaction_pkl":
        out = read_dense_proposals(path)
    elif fmt == "acar_pkl":
        records, _ = read_acar_pickle(path)
        out = acar_records_to_proposals(records)
    else:
        raise ValueError(f"unknown proposal format {fmt!r}; choose one of {PROPOSAL_FORMATS}")
    for (vid, ts), arr in out.items():  # every format: finite, normalized boxes and scores
        if arr.size and (not np.isfinite(arr).all() or arr[:, :4].min() < 0 or arr[:, :4].max() > 1):
            raise ValueError(f"{path} ({fmt}), key frame {vid},{ts}: proposals must be finite with "
                             f"boxes normalized to [0, 1], got {arr.tolist()[:3]}")
    return out


def write_proposals(proposals: Proposals, path, fmt: str, *, overwrite: bool = False,
                    fps: float = 30.0, first_second: int = 900) -> str:
    """
    Write ``proposals`` ({(video_id, timestamp): (R, 5)}) in format ``fmt``.

    ``pyslowfast_csv`` rows carry an empty action column and the score (``%.6g``);
    ``mmaction_pkl`` keys are ``"video_id,%04d"``; ``acar_pkl`` records carry the box score
    under ``"score"``, empty ``label`` lists and ``fps`` / ``first_second`` for the frame window.
    Raises FileExistsError when ``path`` exists and ``overwrite`` is False.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True")
    items = sorted(proposals.items(), key=lambda kv: kv[0])
    if fmt == "pyslowfast_csv":
        with open(path, "w") as f:
            for (vid, ts), arr in items:
                for x1, y1, x2, y2, s in np.asarray(arr, dtype=np.float64).reshape(-1, 5):
                    f.write(f"{vid},{ts:04d},{x1:.6g},{y1:.6g},{x2:.6g},{y2:.6g},,{s:.6g}\n")
    elif fmt == "mmaction_pkl":
        obj = {f"{vid},{ts:04d}": np.asarray(arr, dtype=np.float32).reshape(-1, 5)
               for (vid, ts), arr in items}
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    elif fmt == "acar_pkl":
        boxes = {k: [{"bounding_box": [float(v) for v in r[:4]], "label": [], "person_id": [],
                      "score": float(r[4])} for r in np.asarray(arr).reshape(-1, 5)]
                 for k, arr in items}
        with open(path, "wb") as f:
            pickle.dump((make_acar_records(boxes, fps=fps, first_second=first_second), []), f)
    else:
        raise ValueError(f"unknown proposal format {fmt!r}; choose one of {PROPOSAL_FORMATS}")
    return str(path)


def convert_proposals(src, dst, dst_format: str, src_format: Optional[str] = None,
                      overwrite: bool = False, **kwargs) -> int:
    """Read ``src`` (any format), write ``dst`` in ``dst_format``; returns the key-frame count."""
    proposals = read_proposals(src, src_format)
    write_proposals(proposals, dst, dst_format, overwrite=overwrite, **kwargs)
    return len(proposals)
