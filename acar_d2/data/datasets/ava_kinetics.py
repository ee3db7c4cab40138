"""
AVA-Kinetics (Li et al. 2020): Kinetics-700 clips with one AVA-annotated key frame each, trained
together with AVA v2.2 and evaluated on the combined validation set (the ACAR-Net paper's
AVA-Kinetics challenge setting).

Files (datasets/README.md "AVA-Kinetics"):

- the release's ``kinetics_{train,val}_v1.0.csv``: ``youtube_id,timestamp,x1,y1,x2,y2,action_id``
  (7 columns, or 8 with a person id; the timestamp is the key frame's second in the *YouTube*
  video and may be written as a float, e.g. ``12.0``; boxes normalized);
- the Kinetics clips, 10-second cuts named ``<youtube_id>_<start:06d>_<end:06d>`` after the
  seconds they span in the YouTube video (the Kinetics naming), as frame folders
  ``frames/<clip>/<prefix><n>.<ext>`` (1-based, ``fps`` frames per second from ``start``) and/or
  videos ``videos/<clip>.mp4``. The key frame of second t is 0-based frame ``round((t - start) *
  fps)`` of the clip that contains t; key frames without a clip on disk (Kinetics videos go
  missing from YouTube) are skipped and counted in the log, as the usual preparation does.
- optional person boxes ``kinetics_{train,val}_proposals.{pkl,csv}`` (any proposal format, keys
  ``(youtube_id, second)``).

Dataset dicts keep ``video_id`` = YouTube id and ``timestamp`` = second, so predictions are
written in the key of the ground-truth CSV.
"""
import csv
import logging
import os
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ava_eval.label_map import AVA_LABEL_MAP_FILE, read_label_map
from ..file_readers import frame_size
from ..formats.proposals import read_proposals
from ..layouts import (
    FirstExisting,
    frame_template_from_names,
    resolve_label_map,
    resolve_path,
    split_file_metadata,
    video_frame_count_at,
)
from .ava import _ActionMetadata

__all__ = ["read_kinetics_annotations", "index_kinetics_clips", "load_kinetics_instances",
           "register_ava_kinetics", "write_combined_groundtruth"]

logger = logging.getLogger(__name__)
_CLIP_RE = re.compile(r"^(?P<yid>.+)_(?P<start>\d+)_(?P<end>\d+)$")
_AVA_ALL_ACTION_IDS = set(range(1, 81))

# (youtube_id, second) -> list of (box (4,), [action ids], person id)
KineticsAnnotations = "OrderedDict[Tuple[str, int], List[tuple]]"


def _second(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: timestamp {text!r} is not a number") from None
    if value != round(value):
        raise ValueError(f"{where}: timestamp {text!r} is not a whole second (AVA key frames are)")
    return int(round(value))


def read_kinetics_annotations(path: str, label_ids: Sequence[int],
                              known_action_ids: Optional[Set[int]] = None):
    """
    Read an AVA-Kinetics CSV. Rows of one key frame and box are merged into one person (the
    release has no person ids; an 8th column is read when present).

    Returns:
        OrderedDict[(youtube_id, second), list of (box [x1, y1, x2, y2], [action ids], person id)].
    Raises:
        ValueError naming the file and 1-based line for a malformed row, a box outside [0, 1] or
        an action id outside the label map and ``known_action_ids``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"AVA-Kinetics annotation CSV not found: {path}")
    labels, known = set(label_ids), set(known_action_ids or ())
    out: "OrderedDict[tuple, OrderedDict]" = OrderedDict()
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            where = f"{path}, line {line}"
            if len(row) not in (7, 8):
                raise ValueError(f"{where}: expected 7 or 8 columns youtube_id,timestamp,x1,y1,x2,"
                                 f"y2,action_id[,person_id], got {len(row)}")
            ts = _second(row[1], where)
            try:
                box = tuple(float(v) for v in row[2:6])
                action = int(float(row[6]))
                pid = int(float(row[7])) if len(row) == 8 else -1
            except ValueError:
                raise ValueError(f"{where}: box / action / person id are not numbers: {row}") from None
            if not all(0.0 <= v <= 1.0 for v in box) or not (box[0] <= box[2] and box[1] <= box[3]):
                raise ValueError(f"{where}: box {list(box)} is not a normalized x1 <= x2, y1 <= y2 box")
            if action not in labels and action not in known:
                raise ValueError(f"{where}: action_id {action} is not in the label map")
            persons = out.setdefault((row[0], ts), OrderedDict())
            person = persons.setdefault((box, pid), (list(box), [], pid))
            if action in labels and action not in person[1]:
                person[1].append(action)
    return OrderedDict((k, list(v.values())) for k, v in out.items())


def index_kinetics_clips(frames: Optional[str] = None,
                         videos: Optional[str] = None) -> Dict[str, List[Tuple[int, int, str]]]:
    """youtube_id -> [(start, end, clip name)] of the clips found in ``frames`` / ``videos``."""
    names = set()
    if frames and os.path.isdir(frames):
        names |= {n for n in os.listdir(frames) if os.path.isdir(os.path.join(frames, n))}
    if videos and os.path.isdir(videos):
        names |= {n[:-4] for n in os.listdir(videos) if n.endswith(".mp4")}
    out: Dict[str, List[Tuple[int, int, str]]] = {}
    for n in sorted(names):
        m = _CLIP_RE.match(n)
        if m:
            out.setdefault(m["yid"], []).append((int(m["start"]), int(m["end"]), n))
    return out


def _find_clip(clips, second: int):
    inside = [c for c in clips if c[0] <= second <= c[1]]
    # the clip whose centre is closest: the most context on both sides of the key frame
    return min(inside, key=lambda c: abs((c[0] + c[1]) / 2 - second)) if inside else None


def load_kinetics_instances(
    annotations: str,
    label_map: str,
    *,
    frames: Optional[str] = None,
    videos: Optional[str] = None,
    proposals=None,
    fps: float = 30.0,
    known_action_ids: Optional[Set[int]] = _AVA_ALL_ACTION_IDS,
) -> List[dict]:
    """
    Dataset dicts of the Kinetics side of AVA-Kinetics (docs/ARCHITECTURE.md "Dataset dicts"),
    one per key frame with a clip on disk. ``frame_dir`` / ``frame_template`` when the clip's
    frames exist, ``video_file`` when its mp4 does.
    """
    lmap = read_label_map(label_map)
    anns = read_kinetics_annotations(annotations, lmap.ids, known_action_ids)
    proposals = resolve_path(proposals)
    boxes_per_key = read_proposals(proposals) if proposals else {}
    clips = index_kinetics_clips(frames, videos)
    dicts, skipped, info = [], 0, {}
    for (yid, ts), persons in anns.items():
        clip = _find_clip(clips.get(yid, []), ts)
        if clip is None:
            skipped += 1
            continue
        start, _, name = clip
        if name not in info:
            frame_dir = template = video_file = None
            fdir = os.path.join(frames, name) if frames else None
            if fdir and os.path.isdir(fdir):
                files = sorted(n for n in os.listdir(fdir) if not n.startswith("."))
                template = frame_template_from_names(files, fdir)
                frame_dir, n = fdir, len(files)
                h, w = frame_size(os.path.join(fdir, files[0]))
            vfile = os.path.join(videos, name + ".mp4") if videos else None
            if vfile and os.path.isfile(vfile):
                video_file = vfile
                if frame_dir is None:  # key frames at the split's rate, clips by timestamps
                    n, h, w = video_frame_count_at(vfile, fps)
            info[name] = (frame_dir, template, video_file, n, h, w)
        frame_dir, template, video_file, n, h, w = info[name]
        idx = int(round((ts - start) * fps))
        if not 0 <= idx < n:  # a clip shorter than its name says: no silent clamp to an end
            raise ValueError(
                f"{annotations}: key frame {yid},{ts} maps to frame {idx} = ({ts} - {start}) * {fps:g} "
                f"of clip {name!r}, outside its {n} frames ({frame_dir or video_file}); fix or "
                "remove the row, python tools/validate_dataset.py --kinetics names its line"
            )
        arr = boxes_per_key.get((yid, ts))
        arr = np.zeros((0, 5), np.float32) if arr is None else np.asarray(arr, np.float32)
        scale = np.array([w, h, w, h], dtype=np.float32)
        dicts.append({
            "video_id": yid, "timestamp": ts, "frame_dir": frame_dir, "frame_template": template,
            "video_file": video_file, "fps": float(fps), "key_frame_index": idx, "num_frames": n,
            "height": h, "width": w,
            "annotations": [{"bbox": [b[0] * w, b[1] * h, b[2] * w, b[3] * h],
                             "bbox_mode": BoxMode.XYXY_ABS, "action_ids": list(a), "person_id": p}
                            for b, a, p in persons],
            "proposals": {"boxes": arr[:, :4] * scale, "scores": arr[:, 4].copy()},
        })
    if skipped:
        logger.info(f"{annotations}: {skipped} of {len(anns)} key frames have no Kinetics clip on disk "
                    "(skipped)")
    if not dicts:
        raise FileNotFoundError(f"{annotations}: no key frame has a clip <youtube_id>_<start>_<end> "
                                f"in {frames} / {videos}")
    return dicts


def write_combined_groundtruth(ava_csv: str, kinetics_csv: str, out: str,
                               overwrite: bool = False) -> int:
    """
    The combined AVA-Kinetics validation ground truth for the evaluator: AVA rows as they are,
    Kinetics rows with integer timestamps and person id -1 (8 columns). Returns the row count.
    """
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists; choose another output or pass overwrite=True")
    lines = [ln for ln in open(ava_csv).read().splitlines() if ln.strip()]
    with open(kinetics_csv, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            ts = _second(row[1], f"{kinetics_csv}, line {line}")
            pid = row[7] if len(row) == 8 else "-1"
            lines.append(",".join([row[0], f"{ts:04d}", *row[2:7], pid]))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


def register_ava_kinetics(root: str, prefix: str = "ava_kinetics_v1.0", ava_prefix: str = "ava") -> None:
    """
    Register ``{prefix}_train`` (AVA v2.2 train + Kinetics train), ``{prefix}_val`` (AVA v2.2
    val + Kinetics val, evaluated against ``annotations/ava_kinetics_val_v1.0.csv`` written by
    ``datasets/prepare_ava_kinetics.py``) and ``{prefix}_kinetics_{train,val}`` (Kinetics side
    alone) under ``root/ava_kinetics``; the AVA side is the registered ``{ava_prefix}_v2.2_*``.
    """
    base = os.path.join(root, "ava_kinetics")
    ann = os.path.join(base, "annotations")
    ava_ann = os.path.join(root, "ava", "annotations")
    label_map = os.path.join(ava_ann, "ava_action_list_v2.2_for_activitynet_2019.pbtxt")
    for split in ("train", "val"):
        def kinetics(split=split):
            lm = resolve_label_map(label_map, str(AVA_LABEL_MAP_FILE))
            return load_kinetics_instances(
                os.path.join(ann, f"kinetics_{split}_v1.0.csv"), lm,
                frames=os.path.join(base, "frames"), videos=os.path.join(base, "videos"),
                proposals=FirstExisting(
                    (os.path.join(ann, f"kinetics_{split}_proposals.pkl"),
                     os.path.join(ann, f"kinetics_{split}_proposals.csv")), required=False))

        both = f"{prefix}_{split}"
        only = f"{prefix}_kinetics_{split}"
        DatasetCatalog.register(only, kinetics)
        DatasetCatalog.register(
            both, lambda split=split, kinetics=kinetics: DatasetCatalog.get(
                f"{ava_prefix}_v2.2_{split}") + kinetics())
        gt = {both: os.path.join(ann, f"ava_kinetics_{split}_v1.0.csv"),
              only: os.path.join(ann, f"kinetics_{split}_v1.0.csv")}
        for name in (both, only):
            MetadataCatalog[name] = _ActionMetadata(name=name)
            MetadataCatalog.get(name).set(
                **split_file_metadata(
                    annotations=gt[name], label_map=label_map,
                    exclusions=os.path.join(ava_ann, f"ava_{split}_excluded_timestamps_v2.2.csv")
                    if name == both else None),
                label_map_fallback=str(AVA_LABEL_MAP_FILE), evaluator_type="ava", fps=30.0)
        # for python tools/validate_dataset.py --dataset NAME
        MetadataCatalog.get(only).set(
            **split_file_metadata(frames=os.path.join(base, "frames"),
                                  videos=os.path.join(base, "videos")), kinetics_clips=True)
        MetadataCatalog.get(both).set(validate_parts=(f"{ava_prefix}_v2.2_{split}", only))
