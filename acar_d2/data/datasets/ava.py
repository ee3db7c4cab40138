"""
AVA-format action datasets: readers for the AVA file set and ``register_ava_instances``.

The file formats are those of AVA v2.x as distributed and as PySlowFast consumes them (see
``datasets/README.md``). ``load_ava_instances`` returns one dataset dict per key frame
(docs/ARCHITECTURE.md, "Dataset dicts"); pixels are never read here except the header of one key
frame per video, to know its size.

Bad input raises ``ValueError`` / ``FileNotFoundError`` naming the file and the row.
"""
import csv
import logging
import os
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import BoxMode

from ..clip_reader import video_frame_count_and_size

__all__ = [
    "LabelMap",
    "read_label_map",
    "read_ava_annotations",
    "read_exclusions",
    "read_frame_list",
    "read_predicted_boxes_csv",
    "read_dense_proposals",
    "load_ava_instances",
    "register_ava_instances",
]

logger = logging.getLogger(__name__)

# AVA's label_type values; the 60-class AVA pbtxt carries none, in which case the AVA id ranges
# below apply (AVA v2: ids 1-14 person movement = pose, 15-63 object manipulation, 64-80 person
# interaction; FORMATS.md (iii): the 60 evaluated classes have 13 pose ids, id 2 is missing).
_GROUP_OF_LABEL_TYPE = {
    "PERSON_MOVEMENT": "pose",
    "OBJECT_MANIPULATION": "person_object",
    "PERSON_INTERACTION": "person_person",
}
_AVA_GROUP_ID_RANGES = (("pose", 1, 14), ("person_object", 15, 63), ("person_person", 64, 80))

# Keys of the AVA key-frame dict used by the official CSVs and proposal pickles.
AVAKey = Tuple[str, int]


@dataclass
class LabelMap:
    """
    Parsed label map: ``ids[i]`` is the dataset id of contiguous class index i, ``names[i]`` its
    name, ``groups[i]`` one of "pose", "person_object", "person_person".
    """

    ids: List[int]
    names: List[str]
    groups: List[str]

    @property
    def pose_class_indices(self) -> List[int]:
        return [i for i, g in enumerate(self.groups) if g == "pose"]

    @property
    def class_groups(self) -> Dict[str, List[int]]:
        return {g: [i for i, gi in enumerate(self.groups) if gi == g] for g in _GROUP_ORDER}


_GROUP_ORDER = ("pose", "person_object", "person_person")


def _group_from_ava_id(action_id: int, path: str) -> str:
    for group, lo, hi in _AVA_GROUP_ID_RANGES:
        if lo <= action_id <= hi:
            return group
    raise ValueError(
        f"{path}: id {action_id} has no label_type and is outside AVA's 1..80, so its class group "
        "(pose / person_object / person_person) is unknown; add a label_type line"
    )


def read_label_map(path: str) -> LabelMap:
    """
    Read an AVA ``.pbtxt`` label map (``item { name: "..." id: N [label_type: ...] }``, one field
    per line or all on one line). Classes are returned in ascending id order, the order of the
    official 60-class models (FORMATS.md (iii)).

    Args:
        path (str): the pbtxt file.
    Returns:
        LabelMap
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label map not found: {path}")
    with open(path) as f:
        text = f.read()
    items = re.findall(r"item\s*\{(.*?)\}", text, flags=re.S)
    if not items:
        raise ValueError(f"{path}: no 'item {{ ... }}' blocks found; not an AVA label map")
    entries = []
    for k, body in enumerate(items):
        name = re.search(r'name:\s*"([^"]*)"', body)
        idm = re.search(r"\bid:\s*(-?\d+)", body)
        ltype = re.search(r"label_type:\s*([A-Z_]+)", body)
        if name is None or idm is None:
            raise ValueError(f"{path}: item #{k + 1} lacks a 'name' or an 'id': {body.strip()!r}")
        action_id = int(idm.group(1))
        if action_id < 1:
            raise ValueError(f"{path}: item #{k + 1} has id {action_id}; AVA ids are >= 1")
        if ltype is not None:
            if ltype.group(1) not in _GROUP_OF_LABEL_TYPE:
                raise ValueError(f"{path}: item #{k + 1} has unknown label_type {ltype.group(1)}")
            group = _GROUP_OF_LABEL_TYPE[ltype.group(1)]
        else:
            group = _group_from_ava_id(action_id, path)
        entries.append((action_id, name.group(1), group))
    ids = [e[0] for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    entries.sort()
    return LabelMap([e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries])


def _parse_float(value: str, what: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not a number") from None


def _parse_int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not an integer") from None


def _parse_box(row: Sequence[str], where: str) -> List[float]:
    """Columns 2..5 = normalized x1, y1, x2, y2 inside [0, 1], with x1 <= x2 and y1 <= y2."""
    box = [_parse_float(v, "box coordinate", where) for v in row[2:6]]
    if not all(0.0 <= v <= 1.0 for v in box):
        raise ValueError(f"{where}: box {box} is outside [0, 1] (boxes are normalized x1,y1,x2,y2)")
    if box[0] > box[2] or box[1] > box[3]:
        raise ValueError(f"{where}: box {box} has x1 > x2 or y1 > y2")
    return box


def _csv_rows(path: str) -> Iterable[Tuple[str, List[str]]]:
    """Yield ("<path> row <n>", columns) for every non-blank row of a headerless CSV."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CSV file not found: {path}")
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            yield f"{path} row {n}", row


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
    Read an AVA annotation CSV ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id``.

    Rows of the same key frame, box and person are merged into one :class:`PersonBox` with all its
    action ids (AVA lists one row per action).

    Args:
        path (str): the CSV (no header).
        label_ids (list[int]): ids of the trained classes (the label map).
        known_action_ids (set[int] or None): ids that may appear but are not trained (e.g. AVA's
            80 ids vs the 60 evaluated classes); their rows are dropped with a logged count, as the
            official evaluation's label-map filter does. Any other id is an error.
    Returns:
        OrderedDict[(video_id, timestamp), list[PersonBox]] in order of first appearance.
    """
    label_ids = set(label_ids)
    known_action_ids = set(known_action_ids or ())
    out: "OrderedDict[AVAKey, Dict[tuple, PersonBox]]" = OrderedDict()
    num_dropped = 0
    for where, row in _csv_rows(path):
        if len(row) != 8:
            raise ValueError(
                f"{where}: expected 8 columns video_id,timestamp,x1,y1,x2,y2,action_id,person_id, "
                f"got {len(row)}: {row}"
            )
        key = (row[0], _parse_int(row[1], "timestamp", where))
        box = _parse_box(row, where)
        action_id = _parse_int(row[6], "action_id", where)
        person_id = _parse_int(row[7], "person_id", where)
        persons = out.setdefault(key, OrderedDict())
        person = persons.setdefault((tuple(box), person_id), PersonBox(box, [], person_id))
        if action_id in label_ids:
            if action_id not in person.action_ids:
                person.action_ids.append(action_id)
        elif action_id in known_action_ids:
            num_dropped += 1
        else:
            raise ValueError(
                f"{where}: action_id {action_id} is not in the label map ({len(label_ids)} ids)"
            )
    if num_dropped:
        logger.info(f"{path}: dropped {num_dropped} rows of action ids outside the label map")
    return OrderedDict((k, list(v.values())) for k, v in out.items())


def read_exclusions(path: Optional[str]) -> Set[AVAKey]:
    """Read an excluded-timestamps CSV (``video_id,timestamp`` rows); None/"" = no exclusions."""
    if not path:
        return set()
    keys = set()
    for where, row in _csv_rows(path):
        if len(row) != 2:
            raise ValueError(f"{where}: expected 2 columns video_id,timestamp, got {row}")
        keys.add((row[0], _parse_int(row[1], "timestamp", where)))
    return keys


def read_predicted_boxes_csv(path: str) -> Dict[AVAKey, np.ndarray]:
    """
    Read PySlowFast's person-detection CSV ``video_id,timestamp,x1,y1,x2,y2,[action],score``.

    The action column is empty or ignored; repeated boxes of a key frame (one row per action in
    some files) are kept once.

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)]: normalized x1, y1, x2, y2, score.
    """
    boxes: Dict[AVAKey, "OrderedDict[tuple, float]"] = {}
    for where, row in _csv_rows(path):
        if len(row) != 8:
            raise ValueError(
                f"{where}: expected 8 columns video_id,timestamp,x1,y1,x2,y2,action,score, "
                f"got {len(row)}: {row}"
            )
        key = (row[0], _parse_int(row[1], "timestamp", where))
        box = tuple(_parse_box(row, where))
        score = _parse_float(row[7], "score", where)
        per_key = boxes.setdefault(key, OrderedDict())
        per_key[box] = max(score, per_key.get(box, -np.inf))
    return {
        k: np.array([list(b) + [s] for b, s in v.items()], dtype=np.float32).reshape(-1, 5)
        for k, v in boxes.items()
    }


def read_dense_proposals(path: str) -> Dict[AVAKey, np.ndarray]:
    """
    Read the LFB / ACAR-Net pickled proposals: dict ``"video_id,%04d"`` -> (R, 5) array
    ``[x1, y1, x2, y2, score]`` normalized.

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)].
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"proposal file not found: {path}")
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
    except Exception as e:
        raise ValueError(f"{path}: cannot unpickle proposals ({type(e).__name__}: {e})") from e
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
        if arr.size and (arr[:, :4].min() < 0 or arr[:, :4].max() > 1):
            raise ValueError(f"{where}: proposal boxes are outside [0, 1] (expected normalized)")
        out[(video_id, _parse_int(ts, "timestamp", where))] = arr
    return out


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
            where = f"{path} row {n}"
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
class VideoSource:
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


def _frame_size(path: str) -> Tuple[int, int]:
    """(height, width) from the JPEG header only."""
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"frame not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:
        raise ValueError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    return h, w


def index_video_sources(
    video_ids: Iterable[str],
    frame_root: Optional[str] = None,
    frame_list: Optional[str] = None,
    video_root: Optional[str] = None,
    video_ext: str = ".mp4",
    size_from_frame: Optional[Dict[str, int]] = None,
) -> Dict[str, VideoSource]:
    """
    Locate the frames (folder or frame list) and/or the video file of each video and read its
    frame count and key-frame size (header of one frame; cached per video by construction).

    Args:
        video_ids: videos to index.
        frame_root (str): folder holding ``<video_id>/`` frame folders (AVA: ``frames/``).
        frame_list (str): optional PySlowFast frame list (paths relative to ``frame_root``).
        video_root (str): folder holding ``<video_id><video_ext>`` files.
        size_from_frame (dict): video_id -> 0-based frame whose size is read (the first key
            frame); frame 0 when absent.
    Returns:
        dict[video_id, VideoSource]
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
            height, width = _frame_size(os.path.join(frame_dir, template.format(max(k, 0) + 1)))
        if video_root is not None:
            video_file = os.path.join(video_root, vid + video_ext)
            n, h, w = video_frame_count_and_size(video_file)
            if num_frames is None:
                num_frames, height, width = n, h, w
        if num_frames is None:
            raise ValueError("index_video_sources needs frame_root and/or video_root")
        out[vid] = VideoSource(frame_dir, template, video_file, num_frames, height, width)
    return out


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
        frame_root, frame_list, video_root: frame source (see :func:`index_video_sources`).
        exclusions (str): excluded-timestamps CSV.
        proposal_file (str): person proposals, ``*.pkl`` (dense-proposal dict) or ``*.csv``
            (PySlowFast predicted boxes). All proposals are kept; score thresholds are applied by
            the mapper (``cfg.DATASETS.ACTION.*``).
        fps (float), first_second (int): time -> frame index convention.
        known_action_ids (set[int]): ids dropped quietly (see :func:`read_ava_annotations`).
    Returns:
        list[dict]: docs/ARCHITECTURE.md "Dataset dicts".
    """
    lmap = read_label_map(label_map)
    annotations = read_ava_annotations(gt_csv, lmap.ids, known_action_ids) if gt_csv else {}
    proposals: Dict[AVAKey, np.ndarray] = {}
    if proposal_file:
        if proposal_file.endswith(".csv"):
            proposals = read_predicted_boxes_csv(proposal_file)
        else:
            proposals = read_dense_proposals(proposal_file)
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
            raise ValueError(
                f"{origin}: key frame {vid},{ts} maps to frame {idx}, outside the video's "
                f"{src.num_frames} frames (frame = (timestamp - {first_second}) * {fps})"
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


class _ActionMetadata(Metadata):
    """
    Metadata whose class fields (``action_classes`` ...) are read from the label map on first
    access, so that builtin splits can be registered at import before their files exist.
    """

    _LAZY_KEYS = ("action_classes", "action_ids", "pose_class_indices", "class_groups")

    def __getattr__(self, key):
        if key in _ActionMetadata._LAZY_KEYS and "label_map" in self.__dict__:
            lmap = read_label_map(self.__dict__["label_map"])
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
) -> None:
    """
    Register an AVA-format split in ``DatasetCatalog`` / ``MetadataCatalog``.

    Metadata: everything in ``metadata`` plus ``action_classes``, ``action_ids``,
    ``pose_class_indices``, ``class_groups`` (read from ``label_map`` on first access), ``gt_csv``,
    ``label_map``, ``exclusions``, ``proposal_file``, ``evaluator_type``, ``fps``,
    ``first_second``.

    Args: as :func:`load_ava_instances`.
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
    DatasetCatalog.register(name, lambda: load_ava_instances(gt_csv, label_map, **kwargs))
    MetadataCatalog[name] = _ActionMetadata(name=name)
    MetadataCatalog.get(name).set(
        gt_csv=gt_csv,
        label_map=label_map,
        exclusions=exclusions,
        proposal_file=proposal_file,
        evaluator_type=evaluator_type,
        first_second=first_second,
        **metadata,
    )
    if fps is not None:  # None: the caller's loader sets it once known (synthetic world.json)
        MetadataCatalog.get(name).fps = float(fps)
