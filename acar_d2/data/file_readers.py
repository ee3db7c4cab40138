"""
AVA-format files that need more than the evaluator package ``ava_eval`` offers: guarded pickles
(proposals, UCF101-24 annotations; ``acar_d2.checkpoint.safe_pickle``) and frame sizes (Pillow).
The CSV / label-map readers are :mod:`ava_eval.csv_io` / :mod:`ava_eval.label_map`.
"""
import os
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from ava_eval.csv_io import AVAKey

from ..checkpoint.safe_pickle import UnsafePickleError, read_pickle_safely

__all__ = ["load_pickle", "read_dense_proposals", "frame_size"]

PathLike = Union[str, Path]


def load_pickle(path: PathLike, what: str = "pickle file"):
    """
    Unpickle an annotation / proposal file (latin-1, so Python 2 pickles load too) without running
    code from it: only plain data (NumPy arrays, numbers, strings, lists, dicts) is admitted
    (``acar_d2.checkpoint.safe_pickle``). A missing file raises ``FileNotFoundError``, a file
    naming any other global ``UnsafePickleError`` (a ``ValueError``; full unpickling only with
    the environment variable ``ACAR_ALLOW_UNSAFE_PICKLE=1``), any other failure ``ValueError``;
    all name ``what`` and the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return read_pickle_safely(os.fspath(path), what)
    except UnsafePickleError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: cannot unpickle {what} ({type(e).__name__}: {e})") from e


def read_dense_proposals(path: PathLike) -> Dict[AVAKey, np.ndarray]:
    """
    Read the LFB / ACAR-Net pickled proposals: dict ``"video_id,%04d"`` -> (R, 5) array
    ``[x1, y1, x2, y2, score]`` normalized.

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)].
    """
    raw = load_pickle(path, "proposal file")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict 'video_id,timestamp' -> (R, 5), got {type(raw)}")
    out = {}
    for key, arr in raw.items():
        where = f"{path} key {key!r}"
        if not isinstance(key, str) or "," not in key:
            raise ValueError(f"{where}: keys must be 'video_id,timestamp' strings")
        video_id, ts = key.rsplit(",", 1)
        arr = np.asarray(arr, dtype=np.float32)
        if arr.size == 0:
            arr = arr.reshape(0, 5)
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise ValueError(f"{where}: expected an (R, 5) array x1,y1,x2,y2,score, got {arr.shape}")
        if not np.isfinite(arr).all():
            bad = ~np.isfinite(arr).all(axis=1)
            raise ValueError(f"{where}: {int(bad.sum())} proposal row(s) with NaN / infinite "
                             f"values, e.g. {arr[bad][0].tolist()}")
        if arr.size and (arr[:, :4].min() < 0 or arr[:, :4].max() > 1):
            raise ValueError(f"{where}: proposal boxes are outside [0, 1] (expected normalized)")
        try:
            out[(video_id, int(ts))] = arr
        except ValueError:
            raise ValueError(f"{where}: timestamp {ts!r} is not an integer") from None
    return out


def frame_size(path: PathLike) -> Tuple[int, int]:
    """(height, width) of an image, from its header only."""
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"frame not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:
        raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    return h, w
