"""
Where the files of a dataset are: candidate paths resolved when a split is loaded.

AVA users have the same data under different names (PySlowFast, ACAR-Net, MMAction2 layouts). A
registered split can name a :class:`FirstExisting` list instead of one path: the first candidate
on disk is used when the split is loaded (not when it is registered, so data may arrive after
``import acar_d2``), and a missing required file is an error that lists every candidate.

:func:`ava_proposal_candidates`, :func:`ava_frame_roots` and :func:`ava_frame_lists` are the
search orders of the builtin AVA splits (documented in datasets/README.md).

Frame discovery: :func:`index_video_sources` finds the frames (folder or PySlowFast frame list,
:func:`read_frame_list`) and / or the video file of each video, with its frame count and size
(:class:`IndexedVideo`; no pixels read but the header of one frame). No detectron2 import.
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .file_readers import frame_size
from .video_io import video_frame_count_and_size, video_header

__all__ = ["FirstExisting", "resolve_path", "resolve_label_map", "check_not_pickle",
           "ava_proposal_candidates",
           "SPLIT_FILE_METADATA", "split_file_metadata",
           "set_split_files", "split_file_overrides", "apply_dataset_config",
           "ava_frame_roots", "ava_frame_lists", "read_frame_list", "IndexedVideo",
           "frame_template_from_names", "index_video_sources", "video_frame_count_at"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstExisting:
    """
    Candidate paths, the first existing one wins.

    Attributes:
        paths: candidates in order of preference.
        what: the role, for messages ("proposal file of ava_v2.2_val").
        required: no candidate on disk is an error (False: resolves to None).
        folder: candidates are folders (else files).
    """

    paths: Tuple[str, ...]
    what: str = "file"
    required: bool = True
    folder: bool = False

    def resolve(self) -> Optional[str]:
        exists = os.path.isdir if self.folder else os.path.isfile
        for p in self.paths:
            if exists(p):
                return p
        if self.required:
            listed = "\n  ".join(self.paths)
            raise FileNotFoundError(f"no {self.what} found; looked for (in this order):\n  {listed}")
        return None

    def __str__(self) -> str:  # what the metadata shows before the split is loaded
        return " | ".join(self.paths)


PathOrCandidates = Union[None, str, FirstExisting]


def resolve_path(value: PathOrCandidates) -> Optional[str]:
    """A plain path (or None) as is; a :class:`FirstExisting` resolved now."""
    if isinstance(value, FirstExisting):
        return value.resolve()
    return value


def resolve_label_map(label_map: Optional[str], fallback: Optional[str] = None) -> Optional[str]:
    """
    The label map a split's classes come from: ``label_map`` if it is on disk or there is no
    ``fallback``, else ``fallback`` (builtin AVA splits: the packaged AVA class list, so their
    classes are known before the files arrive). Loading, metadata, evaluator and validator all
    use this one rule.
    """
    if fallback and not os.path.isfile(label_map or ""):
        return fallback
    return label_map


def check_not_pickle(path: Optional[str], role: str = "ground-truth CSV") -> None:
    """
    A pickle passed where a CSV is expected (e.g. ACAR-Net's ``ava_val_v2.2_gt.pkl`` as the
    ground truth) is an error that says what to do, instead of a decoding error.
    """
    if not path or not os.path.isfile(path):
        return
    with open(path, "rb") as f:
        head = f.read(2)
    if path.endswith((".pkl", ".pickle")) or (len(head) == 2 and head[0] == 0x80 and head[1] <= 5):
        raise ValueError(
            f"{path} is a pickle, but a {role} (video_id,timestamp,x1,y1,x2,y2,action_id,"
            "person_id) is expected here. An ACAR-Net annotation pickle converts with "
            f"`python tools/convert_annotations.py acar-to-csv {path} OUT.csv`; a proposal "
            "pickle belongs in the proposal file (proposals= / DATASETS.PROPOSAL_FILES_*)."
        )


def _ann(ann: str, *names: str) -> Tuple[str, ...]:
    return tuple(os.path.join(ann, n) for n in names)


# PySlowFast's pre-prepared person boxes (its configs/AVA/*.yaml TRAIN_PREDICT_BOX_LISTS /
# TEST_PREDICT_BOX_LISTS) live in this folder of annotations/; some copies sit in annotations/.
PYSLOWFAST_BOX_DIR = "person_box_67091280_iou90"
# PySlowFast's train box file per AVA version: v2.1's has no version suffix.
_PYSLOWFAST_TRAIN_BOXES = {
    "v2.1": ("ava_detection_train_boxes_and_labels_include_negative.csv",
             "ava_detection_train_boxes_and_labels_include_negative_v2.1.csv"),
    "v2.2": ("ava_detection_train_boxes_and_labels_include_negative_v2.2.csv",),
}


def _pyslowfast_boxes(split: str, version: str) -> Tuple[str, ...]:
    """
    PySlowFast's detection CSVs of a split, each in ``person_box_67091280_iou90/`` (where its
    configs name them) before ``annotations/`` itself.
    """
    if split == "train":
        names = _PYSLOWFAST_TRAIN_BOXES.get(version, ())
    else:
        names = (f"ava_detection_{split}_boxes_and_labels.csv",)
    return tuple(p for n in names for p in (os.path.join(PYSLOWFAST_BOX_DIR, n), n))


def ava_proposal_candidates(ann: str, split: str, version: str = "v2.2") -> Tuple[str, ...]:
    """
    Person-proposal files of an AVA split, in search order: MMAction2 pickle, PySlowFast's
    predicted boxes and pre-prepared detection CSVs (:func:`_pyslowfast_boxes`), ACAR-Net's
    detection pickles; for train last the other version's PySlowFast CSVs (the same detector's
    person boxes, only their labels, unused here, differ).
    """
    if split == "train":
        other = "v2.1" if version == "v2.2" else "v2.2"
        return _ann(
            ann,
            "dense_proposals_train.pkl",
            "ava_train_predicted_boxes.csv",
            *_pyslowfast_boxes(split, version),
            f"ava_train_{version}_with_fair_0.9.pkl",
            *_pyslowfast_boxes(split, other),
        )
    return _ann(
        ann,
        f"dense_proposals_{split}.pkl",
        f"ava_{split}_predicted_boxes.csv",
        *_pyslowfast_boxes(split, version),
        f"ava_{split}_{version}_fair_0.85.pkl",
    )


def ava_frame_roots(ava: str) -> Tuple[str, ...]:
    """Frame folders: PySlowFast's ``frames/<vid>/<vid>_%06d.jpg``, ACAR-Net's ``data/<vid>/image_%06d.jpg``."""
    return (os.path.join(ava, "frames"), os.path.join(ava, "data"))


def ava_frame_lists(ava: str, split: str) -> Tuple[str, ...]:
    """PySlowFast frame lists (optional: the frame folders are listed when absent)."""
    return (os.path.join(ava, "frame_lists", f"{split}.csv"),)


# ---- Files of a split in its metadata -------------------------------------------------------
# Argument of the loaders / register functions -> metadata key holding that path. The metadata
# keys name a file by role and kind, as detectron2's ``json_file`` / ``image_root`` do, because the
# short argument names are taken in the data flow: ``annotations`` and ``proposals`` are also the
# dataset-dict fields holding the parsed rows. Read by the evaluator (``gt_csv``, ``label_map``,
# ``exclusions``) and by ``python tools/validate_dataset.py --dataset`` (all of them).
SPLIT_FILE_METADATA = {
    "annotations": "gt_csv",
    "label_map": "label_map",
    "frames": "frame_root",
    "frame_list": "frame_list",
    "videos": "video_root",
    "exclusions": "exclusions",
    "proposals": "proposal_file",
}


def split_file_metadata(**files) -> Dict[str, object]:
    """Metadata of split files given by argument name: ``frames=X`` -> ``{"frame_root": X}``."""
    unknown = set(files) - set(SPLIT_FILE_METADATA)
    if unknown:
        raise ValueError(f"split_file_metadata: unknown file role(s) {sorted(unknown)}; "
                         f"choose from {tuple(SPLIT_FILE_METADATA)}")
    return {SPLIT_FILE_METADATA[k]: v for k, v in files.items()}


# ---- Files set from the config ---------------------------------------------------------------
_SPLIT_OVERRIDES: Dict[str, Dict[str, object]] = {}
_OVERRIDABLE = ("proposals", "frames", "frame_list")


def set_split_files(name: str, **files) -> None:
    """
    Replace files of a registered AVA-format split (``proposals``, ``frames``, ``frame_list``:
    arguments of its loader) for its next load; None / "" leaves a file as registered.
    """
    unknown = set(files) - set(_OVERRIDABLE)
    if unknown:
        raise ValueError(f"set_split_files: unknown file role(s) {sorted(unknown)}; "
                         f"choose from {_OVERRIDABLE}")
    current = _SPLIT_OVERRIDES.setdefault(name, {})
    current.update({k: v for k, v in files.items() if v})


def split_file_overrides(name: str) -> Dict[str, object]:
    """The files set for split ``name`` (empty when none)."""
    return dict(_SPLIT_OVERRIDES.get(name, {}))


def apply_dataset_config(cfg) -> None:
    """
    Apply the dataset-file keys of ``cfg`` to the registered splits (call after the config is
    merged, before the loaders are built):

    - ``DATASETS.PROPOSAL_FILES_TRAIN`` / ``PROPOSAL_FILES_TEST`` (detectron2's keys): one
      proposal file per split of ``DATASETS.TRAIN`` / ``TEST`` ("" keeps the split's own);
    - ``DATASETS.AVA_FILES.FRAME_ROOT``: the frame folder of every AVA-format split used;
    - ``DATASETS.AVA_FILES.FRAME_LISTS`` False: ignore PySlowFast frame lists (list folders).
    """
    for names, files in ((cfg.DATASETS.TRAIN, cfg.DATASETS.PROPOSAL_FILES_TRAIN),
                         (cfg.DATASETS.TEST, cfg.DATASETS.PROPOSAL_FILES_TEST)):
        if files and len(files) != len(names):
            raise ValueError(f"DATASETS.PROPOSAL_FILES_* has {len(files)} entries for "
                             f"{len(names)} datasets {tuple(names)}; give one per dataset "
                             "(\"\" keeps a split's own file)")
        for i, name in enumerate(names):
            node = getattr(cfg.DATASETS, "AVA_FILES", None)
            frames = node.FRAME_ROOT if node is not None else ""
            set_split_files(name, proposals=files[i] if files else None, frames=frames)
            if node is not None and not node.FRAME_LISTS:
                _SPLIT_OVERRIDES[name]["frame_list"] = None


def _parse_int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not an integer") from None


def read_frame_list(path: str) -> Dict[str, List[str]]:
    """
    Read a PySlowFast frame list (space separated, header
    ``original_vido_id video_idx frame_id path labels``).

    Returns:
        dict[video_id, list[str]]: frame paths (relative to the frame root) in frame order.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"frame list not found: {path}")
    frames: Dict[str, Dict[int, str]] = OrderedDict()
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts or (n == 1 and parts[0] == "original_vido_id"):
                continue
            where = f"{path}, line {n}"
            if len(parts) < 4:
                raise ValueError(f"{where}: expected 'video_id video_idx frame_id path [labels]'")
            frame_id = _parse_int(parts[2], "frame_id", where)
            frames.setdefault(parts[0], {})[frame_id] = parts[3]
    out = {}
    for video_id, by_id in frames.items():
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{path}: frame ids of video {video_id} are not 0..{len(by_id) - 1}")
        out[video_id] = [by_id[i] for i in range(len(by_id))]
    return out


@dataclass
class IndexedVideo:
    """Where the frames of one video are and how many there are (no pixels)."""

    frame_dir: Optional[str]
    frame_template: Optional[str]  # str.format pattern of the 1-based frame number
    video_file: Optional[str]
    num_frames: int
    height: int
    width: int


_TEMPLATE_RE = re.compile(r"^(.*?)(\d+)(\.[A-Za-z]+)$")


def frame_template_from_names(names: Sequence[str], where: str) -> str:
    """'<vid>_000001.jpg', ... (1-based, consecutive) -> '<vid>_{:06d}.jpg'."""
    m = _TEMPLATE_RE.match(names[0])
    if m is None:
        raise ValueError(f"{where}: frame name {names[0]!r} does not end in '<number>.<ext>'")
    template = m.group(1).replace("{", "{{").replace("}", "}}") + "{:0%dd}" % len(m.group(2))
    template += m.group(3)
    for i, name in enumerate(names):
        if name != template.format(i + 1):
            raise ValueError(
                f"{where}: frame {i} is {name!r}, expected {template.format(i + 1)!r} "
                "(frames must be numbered 1, 2, ... without gaps)"
            )
    return template


def index_video_sources(
    video_ids: Iterable[str],
    frames: Optional[str] = None,
    frame_list: Optional[str] = None,
    videos: Optional[str] = None,
    video_ext: str = ".mp4",
    size_from_frame: Optional[Dict[str, int]] = None,
    fps: Optional[float] = None,
) -> Dict[str, IndexedVideo]:
    """
    Locate the frames (folder or frame list) and/or the video file of each video and read its
    frame count and key-frame size (header of one frame; cached per video by construction).

    Args:
        video_ids: videos to index.
        frames (str): folder holding ``<video_id>/`` frame folders (AVA: ``frames/``).
        frame_list (str): optional PySlowFast frame list (paths relative to ``frames``).
        videos (str): folder holding ``<video_id><video_ext>`` files. With frames too, the
            video is only probed: unreadable is a warning (only INPUT.CLIP.SOURCE "video" needs
            it, and its reader names the file); without frames it is an error.
        size_from_frame (dict): video_id -> 0-based frame whose size is read (the first key
            frame); frame 0 when absent.
        fps (float or None): the split's frame rate: a video without frames counts the frames of
            that rate inside its duration (its key frames are placed at that rate; the clips are
            read by the video's own timestamps), else its own frames.
    Returns:
        dict[video_id, IndexedVideo]
    """
    listed = read_frame_list(frame_list) if frame_list else None
    size_from_frame = size_from_frame or {}
    out = {}
    for vid in video_ids:
        frame_dir = template = video_file = None
        num_frames = height = width = None
        if frames is not None:
            if listed is not None:
                if vid not in listed:
                    raise ValueError(f"{frame_list}: video {vid!r} is not in the frame list")
                rel = listed[vid]
                frame_dir = os.path.join(frames, os.path.dirname(rel[0]))
                template = frame_template_from_names([os.path.basename(p) for p in rel], frame_list)
                num_frames = len(rel)
            else:
                frame_dir = os.path.join(frames, vid)
                if not os.path.isdir(frame_dir):
                    raise FileNotFoundError(f"frame folder of video {vid!r} not found: {frame_dir}")
                names = sorted(n for n in os.listdir(frame_dir) if not n.startswith("."))
                if not names:
                    raise ValueError(f"frame folder of video {vid!r} is empty: {frame_dir}")
                template = frame_template_from_names(names, frame_dir)
                num_frames = len(names)
            k = min(size_from_frame.get(vid, 0), num_frames - 1)
            height, width = frame_size(os.path.join(frame_dir, template.format(max(k, 0) + 1)))
        if videos is not None:
            video_file = os.path.join(videos, vid + video_ext)
            if num_frames is None:
                num_frames, height, width = video_frame_count_at(video_file, fps)
            else:
                # Frames already give count and size: a broken video only matters to
                # INPUT.CLIP.SOURCE "video", whose reader names the file when it opens it.
                _warn_if_unreadable_video(video_file, vid)
        if num_frames is None:
            raise ValueError("index_video_sources needs frames and/or videos")
        out[vid] = IndexedVideo(frame_dir, template, video_file, num_frames, height, width)
    return out


def video_frame_count_at(video_file: str, fps: Optional[float]):
    """(frames, height, width) of a video file with the frames counted at ``fps`` over its
    duration (its own count when ``fps`` is None or its own rate)."""
    header = video_header(video_file)
    if not fps or abs(header.rate - fps) <= 1e-3 * fps:
        return header.num_frames, header.height, header.width
    return int(math.ceil(header.duration * fps - 1e-6)), header.height, header.width


def _warn_if_unreadable_video(video_file: str, vid: str) -> None:
    try:
        video_frame_count_and_size(video_file)
    except (OSError, ValueError) as e:
        logger.warning(f"video {vid!r}: {e}; its frames are used (INPUT.CLIP.SOURCE 'frames'), "
                       "INPUT.CLIP.SOURCE 'video' would fail on it")
