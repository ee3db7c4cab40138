"""
AVA-format action datasets: ``load_ava_instances`` (dataset dicts) and ``register_ava_instances``.

The file formats (label map, annotation / person-box CSVs, exclusions, proposal pickles) are read by
:mod:`ava_eval.ava_format`, which documents them; this module indexes the frames or videos and
builds one dataset dict per key frame (docs/ARCHITECTURE.md, "Dataset dicts"). Pixels are never
read here except the header of one key frame per video, to know its size.

Bad input raises ``ValueError`` / ``FileNotFoundError`` naming the file and the line.
"""
import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import BoxMode

from ava_eval.ava_format import (  # noqa: F401  (several re-exported: public names of this module)
    AVAKey,
    LabelMap,
    check_unit_boxes,
    read_box_csv,
    read_exclusions,
    read_label_map,
)

from ..file_readers import frame_size, read_dense_proposals  # noqa: F401  (re-exported)
from ..video_io import video_frame_count_and_size
from ..formats.proposals import read_proposals, read_pyslowfast_boxes_csv
from ..layouts import check_not_pickle, resolve_path, split_file_overrides

__all__ = [
    "LabelMap",
    "PersonBox",
    "read_label_map",
    "read_ava_annotations",
    "read_exclusions",
    "read_frame_list",
    "read_predicted_boxes_csv",
    "read_dense_proposals",
    "index_video_sources",
    "resolve_label_map",
    "load_ava_instances",
    "register_ava_instances",
]

logger = logging.getLogger(__name__)


def _parse_int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not an integer") from None


@dataclass
class PersonBox:
    """One annotated person on a key frame: normalized box, dataset action ids, person id."""

    box: List[float]
    action_ids: List[int] = field(default_factory=list)
    person_id: int = -1


def read_ava_annotations(
    path: str, label_ids: Sequence[int], known_action_ids: Optional[Set[int]] = None
) -> "OrderedDict[AVAKey, List[PersonBox]]":
    """
    Read an AVA annotation CSV ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id`` (parsed by
    :func:`ava_format.read_box_csv`) for training: 8 columns, boxes inside [0, 1], integer person
    ids. Rows of the same key frame, box and person are merged into one :class:`PersonBox` with
    all its action ids (AVA lists one row per action).

    Args:
        label_ids (list[int]): ids of the trained classes (the label map).
        known_action_ids (set[int] or None): ids that may appear but are not trained (e.g. AVA's
            80 ids vs the 60 evaluated classes); their rows are dropped (the person is kept), as
            the official evaluation's label-map filter does. Any other id is an error.
    Returns:
        OrderedDict[(video_id, timestamp), list[PersonBox]] in order of first appearance.
    """
    table = read_box_csv(path, groundtruth=True, num_columns=8)
    check_unit_boxes(table)
    person_ids = table.scores
    not_int = person_ids != np.floor(person_ids)
    if not_int.any():
        i = int(np.flatnonzero(not_int)[0])
        raise ValueError(f"{path}, line {int(table.lines[i])}: person_id {person_ids[i]} is not "
                         "an integer")
    label_ids, known = set(label_ids), set(known_action_ids or ())
    unknown = ~np.isin(table.labels, list(label_ids | known))
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"{path}, line {int(table.lines[i])}: action_id {int(table.labels[i])} "
                         f"is not in the label map ({len(label_ids)} ids)")
    out: "OrderedDict[AVAKey, Dict[tuple, PersonBox]]" = OrderedDict(
        (k, OrderedDict()) for k in table.keyframes
    )
    for kf, box, action_id, pid in zip(table.keyframe.tolist(), table.boxes.tolist(),
                                       table.labels.tolist(), person_ids.astype(np.int64).tolist()):
        persons = out[table.keyframes[kf]]
        person = persons.setdefault((tuple(box), pid), PersonBox(box, [], pid))
        if action_id in label_ids and action_id not in person.action_ids:
            person.action_ids.append(action_id)
    num_dropped = int((~np.isin(table.labels, list(label_ids))).sum())
    if num_dropped:
        logger.info(f"{path}: dropped {num_dropped} rows of action ids outside the label map")
    return OrderedDict((k, list(v.values())) for k, v in out.items())


def read_predicted_boxes_csv(path: str) -> Dict[AVAKey, np.ndarray]:
    """
    Read PySlowFast's person-detection CSV ``video_id,timestamp,x1,y1,x2,y2,[action],score``.

    The action column is empty or ignored; repeated boxes of a key frame (one row per action in
    some files) are kept once, with their highest score.

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)]: normalized x1, y1, x2, y2, score.
    """
    return read_pyslowfast_boxes_csv(path)


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


def _template_from_names(names: Sequence[str], where: str) -> str:
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
    frame_root: Optional[str] = None,
    frame_list: Optional[str] = None,
    video_root: Optional[str] = None,
    video_ext: str = ".mp4",
    size_from_frame: Optional[Dict[str, int]] = None,
) -> Dict[str, IndexedVideo]:
    """
    Locate the frames (folder or frame list) and/or the video file of each video and read its
    frame count and key-frame size (header of one frame; cached per video by construction).

    Args:
        video_ids: videos to index.
        frame_root (str): folder holding ``<video_id>/`` frame folders (AVA: ``frames/``).
        frame_list (str): optional PySlowFast frame list (paths relative to ``frame_root``).
        video_root (str): folder holding ``<video_id><video_ext>`` files. With frames too, the
            video is only probed: unreadable is a warning (only INPUT.CLIP.SOURCE "video" needs
            it, and its reader names the file); without frames it is an error.
        size_from_frame (dict): video_id -> 0-based frame whose size is read (the first key
            frame); frame 0 when absent.
    Returns:
        dict[video_id, IndexedVideo]
    """
    listed = read_frame_list(frame_list) if frame_list else None
    size_from_frame = size_from_frame or {}
    out = {}
    for vid in video_ids:
        frame_dir = template = video_file = None
        num_frames = height = width = None
        if frame_root is not None:
            if listed is not None:
                if vid not in listed:
                    raise ValueError(f"{frame_list}: video {vid!r} is not in the frame list")
                rel = listed[vid]
                frame_dir = os.path.join(frame_root, os.path.dirname(rel[0]))
                template = _template_from_names([os.path.basename(p) for p in rel], frame_list)
                num_frames = len(rel)
            else:
                frame_dir = os.path.join(frame_root, vid)
                if not os.path.isdir(frame_dir):
                    raise FileNotFoundError(f"frame folder of video {vid!r} not found: {frame_dir}")
                names = sorted(n for n in os.listdir(frame_dir) if not n.startswith("."))
                if not names:
                    raise ValueError(f"frame folder of video {vid!r} is empty: {frame_dir}")
                template = _template_from_names(names, frame_dir)
                num_frames = len(names)
            k = min(size_from_frame.get(vid, 0), num_frames - 1)
            height, width = frame_size(os.path.join(frame_dir, template.format(max(k, 0) + 1)))
        if video_root is not None:
            video_file = os.path.join(video_root, vid + video_ext)
            if num_frames is None:
                num_frames, height, width = video_frame_count_and_size(video_file)
            else:
                # Frames already give count and size: a broken video only matters to
                # INPUT.CLIP.SOURCE "video", whose reader names the file when it opens it.
                _warn_if_unreadable_video(video_file, vid)
        if num_frames is None:
            raise ValueError("index_video_sources needs frame_root and/or video_root")
        out[vid] = IndexedVideo(frame_dir, template, video_file, num_frames, height, width)
    return out


def _warn_if_unreadable_video(video_file: str, vid: str) -> None:
    try:
        video_frame_count_and_size(video_file)
    except (OSError, ValueError) as e:
        logger.warning(f"video {vid!r}: {e}; its frames are used (INPUT.CLIP.SOURCE 'frames'), "
                       "INPUT.CLIP.SOURCE 'video' would fail on it")


def _proposals_abs(arr: Optional[np.ndarray], height: int, width: int) -> Dict[str, np.ndarray]:
    """(R, 5) normalized [box, score] -> {"boxes": (R, 4) XYXY_ABS, "scores": (R,)} float32."""
    if arr is None:
        arr = np.zeros((0, 5), dtype=np.float32)
    scale = np.array([width, height, width, height], dtype=np.float32)
    return {"boxes": arr[:, :4] * scale, "scores": arr[:, 4].astype(np.float32).copy()}


def load_ava_instances(
    gt_csv: Optional[str],
    label_map: str,
    *,
    frame_root: Optional[str] = None,
    frame_list: Optional[str] = None,
    video_root: Optional[str] = None,
    exclusions: Optional[str] = None,
    proposal_file: Optional[str] = None,
    fps: float = 30.0,
    first_second: int = 900,
    known_action_ids: Optional[Set[int]] = None,
    include_proposal_only_frames: bool = True,
) -> List[dict]:
    """
    Load an AVA-format split as detectron2 dataset dicts, one per key frame.

    Key frames are those of the ground-truth CSV, plus (``include_proposal_only_frames``) those
    that only have proposals (test splits), minus the excluded timestamps. The key frame of second
    t is the 0-based frame ``round((t - first_second) * fps)`` (AVA: frames extracted from second
    900 at 30 fps).

    Args:
        gt_csv (str or None): AVA annotation CSV; None for a split without labels.
        label_map (str): pbtxt of the trained classes.
        frame_root, frame_list, video_root: frame source (see :func:`index_video_sources`);
            ``frame_root`` / ``frame_list`` may be :class:`~acar_d2.data.layouts.FirstExisting`
            candidates (an optional frame list absent on disk: the folders are listed).
        exclusions (str): excluded-timestamps CSV.
        proposal_file (str or FirstExisting): person proposals in any format of
            :mod:`acar_d2.data.formats.proposals` (PySlowFast CSV, MMAction2 dense-proposal
            pickle, ACAR-Net detection pickle; told apart by content). All proposals are kept;
            score thresholds are applied by the model / mapper.
        fps (float), first_second (int): time -> frame index convention.
        known_action_ids (set[int]): ids dropped quietly (see :func:`read_ava_annotations`).
    Returns:
        list[dict]: docs/ARCHITECTURE.md "Dataset dicts".
    """
    check_not_pickle(gt_csv)
    lmap = read_label_map(label_map)
    annotations = read_ava_annotations(gt_csv, lmap.ids, known_action_ids) if gt_csv else {}
    # Candidate lists (layouts.FirstExisting) of registered splits are resolved now.
    proposal_file, frame_root, frame_list = (
        resolve_path(proposal_file), resolve_path(frame_root), resolve_path(frame_list)
    )
    proposals: Dict[AVAKey, np.ndarray] = {}
    if proposal_file:
        # PySlowFast CSV, MMAction2 or ACAR-Net pickle (told apart by content)
        proposals = read_proposals(proposal_file)
    excluded = read_exclusions(exclusions)

    keys = list(annotations.keys())
    if include_proposal_only_frames:
        seen = set(keys)
        keys += sorted(k for k in proposals if k not in seen)
    keys = [k for k in keys if k not in excluded]

    def frame_index(ts: int) -> int:
        return int(round((ts - first_second) * fps))

    first_key_frame: Dict[str, int] = {}
    for vid, ts in keys:
        first_key_frame.setdefault(vid, max(frame_index(ts), 0))
    sources = index_video_sources(
        first_key_frame.keys(), frame_root, frame_list, video_root, size_from_frame=first_key_frame
    )

    dicts = []
    for vid, ts in keys:
        src = sources[vid]
        idx = frame_index(ts)
        if not 0 <= idx < src.num_frames:
            origin = gt_csv if (vid, ts) in annotations else proposal_file
            # The clip's frames past the ends are padded (clip_frame_indices), its key frame is not.
            raise ValueError(
                f"{origin}: key frame {vid},{ts} maps to frame {idx} = ({ts} - {first_second}) * "
                f"{fps:g}, outside the {src.num_frames} frames of video {vid!r} "
                f"({src.frame_dir or src.video_file}); fix or remove the row (wrong fps or "
                "first_second?), python tools/validate_dataset.py names its line"
            )
        h, w = src.height, src.width
        anns = [
            {
                "bbox": [p.box[0] * w, p.box[1] * h, p.box[2] * w, p.box[3] * h],
                "bbox_mode": BoxMode.XYXY_ABS,
                "action_ids": list(p.action_ids),
                "person_id": p.person_id,
            }
            for p in annotations.get((vid, ts), [])
        ]
        dicts.append(
            {
                "video_id": vid,
                "timestamp": ts,
                "frame_dir": src.frame_dir,
                "frame_template": src.frame_template,
                "video_file": src.video_file,
                "fps": float(fps),
                "key_frame_index": idx,
                "num_frames": src.num_frames,
                "height": h,
                "width": w,
                "annotations": anns,
                "proposals": _proposals_abs(proposals.get((vid, ts)), h, w),
            }
        )
    return dicts


def resolve_label_map(label_map: str, fallback: Optional[str] = None) -> str:
    """``label_map`` if it is on disk or there is no ``fallback``, else ``fallback``."""
    if fallback and not os.path.isfile(label_map):
        return fallback
    return label_map


class _ActionMetadata(Metadata):
    """
    Metadata whose class fields (``action_classes`` ...) are read from the label map on first
    access, so that builtin splits can be registered at import before their files exist; when
    the label map is not on disk, from ``label_map_fallback`` if set (the packaged AVA classes).
    """

    _LAZY_KEYS = ("action_classes", "action_ids", "pose_class_indices", "class_groups")

    def __getattr__(self, key):
        if key in _ActionMetadata._LAZY_KEYS and "label_map" in self.__dict__:
            path = resolve_label_map(
                self.__dict__["label_map"], self.__dict__.get("label_map_fallback")
            )
            if path != self.__dict__["label_map"]:
                logger.info(f"{self.__dict__['label_map']} not found: {self.__dict__['name']} "
                            f"uses the classes of {path}")
            lmap = read_label_map(path)
            # Write __dict__ directly: Metadata.__setattr__ would call getattr -> recursion.
            self.__dict__.update(
                action_classes=lmap.names,
                action_ids=lmap.ids,
                pose_class_indices=lmap.pose_class_indices,
                class_groups=lmap.class_groups,
            )
            return self.__dict__[key]
        return super().__getattr__(key)


def register_ava_instances(
    name: str,
    metadata: dict,
    gt_csv: Optional[str],
    label_map: str,
    *,
    frame_root: Optional[str] = None,
    frame_list: Optional[str] = None,
    video_root: Optional[str] = None,
    exclusions: Optional[str] = None,
    proposal_file: Optional[str] = None,
    fps: Optional[float] = 30.0,
    first_second: int = 900,
    known_action_ids: Optional[Set[int]] = None,
    evaluator_type: str = "ava",
    label_map_fallback: Optional[str] = None,
) -> None:
    """
    Register an AVA-format split in ``DatasetCatalog`` / ``MetadataCatalog``.

    Metadata: everything in ``metadata`` plus ``action_classes``, ``action_ids``,
    ``pose_class_indices``, ``class_groups`` (read from ``label_map`` on first access), ``gt_csv``,
    ``label_map``, ``label_map_fallback``, ``exclusions``, ``proposal_file``, ``evaluator_type``,
    ``fps``, ``first_second``.

    Args: as :func:`load_ava_instances`, plus
        label_map_fallback (str or None): label map used (metadata and loading) when
            ``label_map`` is not on disk, e.g. ``ava_format.AVA_LABEL_MAP_FILE``.
    """
    kwargs = dict(
        frame_root=frame_root,
        frame_list=frame_list,
        video_root=video_root,
        exclusions=exclusions,
        proposal_file=proposal_file,
        fps=fps,
        first_second=first_second,
        known_action_ids=known_action_ids,
    )
    DatasetCatalog.register(
        name,
        # split_file_overrides: files set from the config (layouts.apply_dataset_config)
        lambda: load_ava_instances(
            gt_csv, resolve_label_map(label_map, label_map_fallback),
            **{**kwargs, **split_file_overrides(name)},
        ),
    )
    MetadataCatalog[name] = _ActionMetadata(name=name)
    MetadataCatalog.get(name).set(
        gt_csv=gt_csv,
        label_map=label_map,
        label_map_fallback=label_map_fallback,
        exclusions=exclusions,
        proposal_file=proposal_file,
        evaluator_type=evaluator_type,
        first_second=first_second,
        # frame sources, for python tools/validate_dataset.py --dataset NAME
        frame_root=frame_root,
        frame_list=frame_list,
        video_root=video_root,
        **metadata,
    )
    if fps is not None:  # None: the caller's loader sets it once known (synthetic world.json)
        MetadataCatalog.get(name).fps = float(fps)
