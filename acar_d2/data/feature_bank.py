"""
Long-term feature banks on disk (ACFB / LFB) and the data path that reads a key frame's window.

Layout of a bank folder (``MODEL.FEATURE_BANK.DIR``, written by ``tools/extract_feature_bank.py``)::

    bank_record.json           what produced it: kind, entry shape, extraction config keys,
                               weights path + sha256, datasets, dtype (``BankRecord``,
                               acar_d2/data/bank_record.py, with the rule a reader applies)
    videos/<video_id>.npy      float16 (A, C, h, w): every actor at every bank time of the video,
                               time-major (np.load(mmap_mode="r"): a window reads only its rows)
    videos/<video_id>.json     index: "timestamps" (T,) seconds, "offsets" (T + 1,) rows of each
                               time, "valid_sizes" (A, 2), "boxes" (A, 4) key-frame px, "scores"

A video's .json is written last (after its .npy, each through a temporary name), so a video
counts as done exactly when its .json exists; an interrupted extraction restarts at the first
video without one.

Window of a key frame at time t (seconds): bank times ``t + STRIDE * k`` for
``k = -(n // 2) .. n - 1 - n // 2`` with ``n = WINDOW_SIZE`` (ACFB: 19 clips, t-9 .. t+9 s;
LFB: 60, t-30 .. t+29 s); ``INCLUDE_CURRENT: False`` drops k = 0. **Padding**: times before the
video's first or after its last bank time, and times without any actor, contribute no entry
(the window is a set of entries; the heads mask empty slots, so nothing is attended there,
rather than attending to zero vectors). A window without any entry is an empty memory: the bank
blocks are the identity for that clip. ``MAX_ENTRIES`` keeps the entries nearest in time.
When the clip is flipped (training augmentation), each entry's valid region is flipped too, so
that the location-wise attention compares the same places.
"""
import json
import os
from collections import OrderedDict
from typing import List, Optional, Sequence

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T

from .bank_record import RECORD_FILE, BankRecord, bank_compat_keys
from .clip_mapper import ClipDatasetMapper

# RECORD_FILE and bank_compat_keys are defined in bank_record.py (re-exported for tools).
__all__ = [
    "RECORD_FILE", "FeatureBank", "FeatureBankDatasetMapper", "bank_compat_keys", "window_times",
    "write_video_bank",
]

def window_times(t: int, window_size: int, stride: int = 1, include_current: bool = True) -> List[int]:
    """Bank times of the window around key time ``t`` (module docstring)."""
    ks = range(-(window_size // 2), window_size - window_size // 2)
    return [t + stride * k for k in ks if include_current or k != 0]


def _atomic_write(path: str, write) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_video_bank(folder: str, video_id: str, entries: Sequence[dict]) -> None:
    """
    Write one video's bank: ``entries`` in time order, each {"timestamp": int, "features":
    (R, C, h, w), "valid_sizes": (R, 2), "boxes": (R, 4), "scores": (R,)}. The .npy goes first,
    the .json index last (a video is done when its .json exists); same inputs, same bytes.
    """
    os.makedirs(folder, exist_ok=True)
    feats = [np.asarray(e["features"], dtype=np.float16) for e in entries]
    shapes = {f.shape[1:] for f in feats if len(f)}
    if len(shapes) > 1:
        raise ValueError(f"video {video_id}: bank entries of different shapes {sorted(shapes)}")
    shape = shapes.pop() if shapes else (feats[0].shape[1:] if feats else (0, 0, 0))
    arr = np.concatenate(feats) if feats else np.zeros((0, *shape), np.float16)
    counts = [len(f) for f in feats]
    index = {
        "video_id": video_id,
        "entry_shape": [int(s) for s in shape],
        "timestamps": [int(e["timestamp"]) for e in entries],
        "offsets": [int(v) for v in np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])],
        "valid_sizes": [[int(v) for v in row] for e in entries for row in np.asarray(e["valid_sizes"]).reshape(-1, 2)],
        "boxes": [[round(float(v), 3) for v in row] for e in entries for row in np.asarray(e["boxes"]).reshape(-1, 4)],
        "scores": [round(float(v), 5) for e in entries for v in np.asarray(e["scores"]).reshape(-1)],
    }
    _atomic_write(os.path.join(folder, f"{video_id}.npy"), lambda f: np.save(f, arr))
    text = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    _atomic_write(os.path.join(folder, f"{video_id}.json"), lambda f: f.write(text))


class _VideoBank:
    """One video's bank: the index in memory, the features memory-mapped."""

    def __init__(self, folder: str, video_id: str):
        index_path = os.path.join(folder, f"{video_id}.json")
        npy_path = os.path.join(folder, f"{video_id}.npy")
        for p in (index_path, npy_path):
            if not os.path.isfile(p):
                raise FileNotFoundError(
                    f"feature bank of video '{video_id}' not found: {p} is missing (extract the "
                    "bank for this video's dataset with tools/extract_feature_bank.py, or finish "
                    "an interrupted extraction with the same command)"
                )
        with open(index_path) as f:
            index = json.load(f)
        self.features = np.load(npy_path, mmap_mode="r")
        self.row_of = {t: (a, b) for t, a, b in zip(index["timestamps"], index["offsets"],
                                                    index["offsets"][1:])}
        self.valid_sizes = np.asarray(index["valid_sizes"], dtype=np.int64).reshape(-1, 2)
        self.boxes = np.asarray(index["boxes"], dtype=np.float32).reshape(-1, 4)
        if len(self.features) != index["offsets"][-1]:
            raise ValueError(f"{npy_path}: {len(self.features)} rows but its index "
                             f"{index_path} says {index['offsets'][-1]}")


class FeatureBank:
    """
    Reader of a bank folder: checks its ``BankRecord`` against the config once, opens per-video
    files lazily (memory-mapped, at most ``cache_size`` open per process) and returns windows.
    """

    def __init__(self, root: str, cfg=None, cache_size: int = 64):
        """
        Args:
            root: the bank folder (``MODEL.FEATURE_BANK.DIR``).
            cfg: the config of the model that reads the bank; its record must fit it
                (:meth:`BankRecord.check_readable_by`). None = no check (tools).
        """
        self.record = BankRecord.load(root)
        if cfg is not None:
            self.record.check_readable_by(cfg, root)
        self.root = root
        self.entry_shape = tuple(self.record.entry_shape or ())
        self.cache_size = int(cache_size)
        self._open: "OrderedDict[str, _VideoBank]" = OrderedDict()

    def video(self, video_id: str) -> _VideoBank:
        vb = self._open.pop(video_id, None)
        if vb is None:
            vb = _VideoBank(os.path.join(self.root, "videos"), video_id)
        self._open[video_id] = vb
        while len(self._open) > self.cache_size:
            self._open.popitem(last=False)
        return vb

    def window(self, video_id: str, t: int, window_size: int, stride: int = 1,
               include_current: bool = True, max_entries: int = 0, flip: bool = False,
               frame_size: Optional[Sequence[int]] = None) -> dict:
        """
        The entries of the window around key time ``t`` of ``video_id`` (module docstring).
        ``frame_size`` (height, width) of the key frames in px: also return the entries' boxes.

        Returns:
            dict: "features" float16 (M, C, h, w) tensor, "valid_sizes" (M, 2) long,
            "times" (M,) long (bank time - t, seconds), ordered by time; with ``frame_size``
            "boxes" (M, 4) float XYXY normalised to [0, 1] (flipped with the clip), the places
            the ACFB head's ``PLACE_ENCODING`` reads.
        """
        vb = self.video(video_id)
        times = [s for s in window_times(t, window_size, stride, include_current) if s in vb.row_of]
        if max_entries > 0:
            nearest = sorted(times, key=lambda s: (abs(s - t), s))
            kept, total = [], 0
            for s in nearest:
                a, b = vb.row_of[s]
                if total + (b - a) > max_entries:
                    continue
                kept.append(s)
                total += b - a
            times = sorted(kept)
        rows = [np.arange(*vb.row_of[s]) for s in times]
        idx = np.concatenate(rows) if rows else np.zeros((0,), np.int64)
        # Rows of consecutive times are contiguous: read merged slices (sequential reads of the
        # memory map) instead of a fancy index.
        spans = []
        for s in times:
            a, b = vb.row_of[s]
            if spans and spans[-1][1] == a:
                spans[-1][1] = b
            elif b > a:
                spans.append([a, b])
        if spans:
            feats = np.concatenate([np.asarray(vb.features[a:b]) for a, b in spans])
        else:
            feats = np.zeros((0, *self.entry_shape), np.float16)
        sizes = vb.valid_sizes[idx] if len(idx) else np.zeros((0, 2), np.int64)
        rel = np.concatenate([np.full(len(r), s - t) for s, r in zip(times, rows)]) if rows else []
        out = {"features": torch.from_numpy(feats), "valid_sizes": torch.as_tensor(sizes),
               "times": torch.as_tensor(np.asarray(rel, dtype=np.int64))}
        if flip:
            out["features"] = _flip_valid(out["features"], out["valid_sizes"])
        if frame_size is not None:
            h, w = (float(v) for v in frame_size)
            boxes = torch.as_tensor(vb.boxes[idx] if len(idx) else np.zeros((0, 4), np.float32))
            boxes = boxes / boxes.new_tensor([w, h, w, h])
            out["boxes"] = torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1) if flip else boxes
        return out


def _flip_valid(feats: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Mirror each entry's valid (top-left, width w_i) block horizontally; padding stays."""
    out = feats.clone()
    for w in sizes[:, 1].unique().tolist():
        sel = sizes[:, 1] == w
        out[sel, ..., :w] = feats[sel, ..., :w].flip(-1)
    return out


class _RecordingAugmentations:
    """Calls the mapper's augmentations and keeps the last transforms (to see the flip)."""

    def __init__(self, augs):
        self.augs = augs
        self.last: Optional[T.TransformList] = None

    def __call__(self, aug_input):
        self.last = self.augs(aug_input)
        return self.last

    def __repr__(self) -> str:
        return repr(self.augs)


class FeatureBankDatasetMapper:
    """
    ``ClipDatasetMapper`` + the key frame's bank window: its output (docs/ARCHITECTURE.md) gains
    ``"feature_bank"``: {"features" float16 (M, C, h, w), "valid_sizes" (M, 2), "times" (M,),
    "boxes" (M, 4) normalised}.
    """

    @configurable
    def __init__(self, clip_mapper: ClipDatasetMapper, bank: FeatureBank, *, window_size: int,
                 stride: int = 1, include_current: bool = True, max_entries: int = 0):
        self.clip_mapper = clip_mapper
        self._augs = _RecordingAugmentations(clip_mapper.augmentations)
        clip_mapper.augmentations = self._augs
        self.bank = bank
        self.window_size = int(window_size)
        self.stride = int(stride)
        self.include_current = bool(include_current)
        self.max_entries = int(max_entries)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, dataset_name: Optional[str] = None, **kwargs):
        fb = cfg.MODEL.FEATURE_BANK
        if not fb.DIR:
            raise ValueError(f"MODEL.ROI_HEADS.NAME={cfg.MODEL.ROI_HEADS.NAME} reads a feature bank "
                             "but MODEL.FEATURE_BANK.DIR is empty: write a bank with "
                             "tools/extract_feature_bank.py")
        return {
            "clip_mapper": ClipDatasetMapper(cfg, is_train, dataset_name=dataset_name, **kwargs),
            "bank": FeatureBank(fb.DIR, cfg),
            "window_size": fb.WINDOW_SIZE, "stride": fb.STRIDE,
            "include_current": fb.INCLUDE_CURRENT, "max_entries": fb.MAX_ENTRIES,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        out = self.clip_mapper(dataset_dict)
        flipped = any(isinstance(t, T.HFlipTransform) for t in (self._augs.last or []))
        out["feature_bank"] = self.bank.window(
            dataset_dict["video_id"], int(dataset_dict["timestamp"]), self.window_size,
            self.stride, self.include_current, self.max_entries, flip=flipped,
            frame_size=((dataset_dict["height"], dataset_dict["width"])
                        if "height" in dataset_dict and "width" in dataset_dict else None),
        )
        return out
