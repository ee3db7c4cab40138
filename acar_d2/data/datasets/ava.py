"""
AVA-format action datasets: ``load_ava_instances`` (dataset dicts) and ``register_ava_instances``.

The file formats (label map, annotation / person-box CSVs, exclusions, proposal pickles) are read by
:mod:`ava_eval.csv_io` and :mod:`ava_eval.label_map`, which document them (with the training rules);
the frames or videos are found by :func:`acar_d2.data.layouts.index_video_sources`; this module
builds one dataset dict per key frame (docs/ARCHITECTURE.md, "Dataset dicts"). Pixels are never
read here except the header of one key frame per video, to know its size.

Bad input raises ``ValueError`` / ``FileNotFoundError`` naming the file and the line.
"""
import logging
from typing import Dict, List, Optional, Set

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import BoxMode

from ava_eval.csv_io import (  # noqa: F401  (several re-exported: public names of this module)
    AVAKey,
    PersonBox,
    read_ava_annotations,
    read_exclusions,
    read_predicted_boxes_csv,
)
from ava_eval.label_map import LabelMap, read_label_map  # noqa: F401  (re-exported)

from ..file_readers import read_dense_proposals  # noqa: F401  (re-exported)
from ..formats.proposals import read_proposals
from ..layouts import (  # noqa: F401  (frame discovery re-exported)
    check_not_pickle,
    index_video_sources,
    read_frame_list,
    resolve_label_map,
    resolve_path,
    split_file_metadata,
    split_file_overrides,
)

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

def _proposals_abs(arr: Optional[np.ndarray], height: int, width: int) -> Dict[str, np.ndarray]:
    """(R, 5) normalized [box, score] -> {"boxes": (R, 4) XYXY_ABS, "scores": (R,)} float32."""
    if arr is None:
        arr = np.zeros((0, 5), dtype=np.float32)
    scale = np.array([width, height, width, height], dtype=np.float32)
    return {"boxes": arr[:, :4] * scale, "scores": arr[:, 4].astype(np.float32).copy()}


def load_ava_instances(
    annotations: Optional[str],
    label_map: str,
    *,
    frames: Optional[str] = None,
    frame_list: Optional[str] = None,
    videos: Optional[str] = None,
    exclusions: Optional[str] = None,
    proposals: Optional[str] = None,
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
        annotations (str or None): AVA annotation CSV; None for a split without labels.
        label_map (str): pbtxt of the trained classes.
        frames, frame_list, videos: frame source (see :func:`index_video_sources`);
            ``frames`` / ``frame_list`` may be :class:`~acar_d2.data.layouts.FirstExisting`
            candidates (an optional frame list absent on disk: the folders are listed).
        exclusions (str): excluded-timestamps CSV.
        proposals (str or FirstExisting): person proposals in any format of
            :mod:`acar_d2.data.formats.proposals` (PySlowFast CSV, MMAction2 dense-proposal
            pickle, ACAR-Net detection pickle; told apart by content). All proposals are kept;
            score thresholds are applied by the model / mapper.
        fps (float), first_second (int): time -> frame index convention.
        known_action_ids (set[int]): ids dropped quietly (see :func:`read_ava_annotations`).
    Returns:
        list[dict]: docs/ARCHITECTURE.md "Dataset dicts".
    """
    check_not_pickle(annotations)
    lmap = read_label_map(label_map)
    persons = read_ava_annotations(annotations, lmap.ids, known_action_ids) if annotations else {}
    # Candidate lists (layouts.FirstExisting) of registered splits are resolved now.
    proposals, frames, frame_list = (
        resolve_path(proposals), resolve_path(frames), resolve_path(frame_list)
    )
    boxes_per_key: Dict[AVAKey, np.ndarray] = {}
    if proposals:
        # PySlowFast CSV, MMAction2 or ACAR-Net pickle (told apart by content)
        boxes_per_key = read_proposals(proposals)

    keys = _key_frames(persons, boxes_per_key, read_exclusions(exclusions),
                       include_proposal_only_frames)

    def frame_index(ts: int) -> int:
        return int(round((ts - first_second) * fps))

    first_key_frame: Dict[str, int] = {}
    for vid, ts in keys:
        first_key_frame.setdefault(vid, max(frame_index(ts), 0))
    sources = index_video_sources(
        first_key_frame.keys(), frames, frame_list, videos, size_from_frame=first_key_frame,
        fps=fps,
    )

    dicts = []
    for vid, ts in keys:
        src = sources[vid]
        idx = frame_index(ts)
        if not 0 <= idx < src.num_frames:
            origin = annotations if (vid, ts) in persons else proposals
            # The clip's frames past the ends are padded (clip_frame_indices), its key frame is not.
            raise ValueError(
                f"{origin}: key frame {vid},{ts} maps to frame {idx} = ({ts} - {first_second}) * "
                f"{fps:g}, outside the {src.num_frames} frames of video {vid!r} "
                f"({src.frame_dir or src.video_file}); fix or remove the row (wrong fps or "
                "first_second?), python tools/validate_dataset.py names its line"
            )
        dicts.append(_key_frame_dict(vid, ts, src, idx, fps, persons.get((vid, ts), []),
                                     boxes_per_key.get((vid, ts))))
    return dicts


def _key_frames(persons: dict, boxes_per_key: dict, excluded, include_proposal_only: bool) -> list:
    """The (video_id, timestamp) keys of a split: those with annotations, then (``include_proposal_only``)
    those with proposals only, minus the excluded ones."""
    keys = list(persons.keys())
    if include_proposal_only:
        seen = set(keys)
        keys += sorted(k for k in boxes_per_key if k not in seen)
    return [k for k in keys if k not in excluded]


def _key_frame_dict(vid: str, ts: int, src, idx: int, fps: float, persons: list,
                    boxes: Optional[np.ndarray]) -> dict:
    """One dataset dict (docs/ARCHITECTURE.md "Dataset dicts"): boxes in key-frame px."""
    h, w = src.height, src.width
    anns = [
        {
            "bbox": [p.box[0] * w, p.box[1] * h, p.box[2] * w, p.box[3] * h],
            "bbox_mode": BoxMode.XYXY_ABS,
            "action_ids": list(p.action_ids),
            "person_id": p.person_id,
        }
        for p in persons
    ]
    return {
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
        "proposals": _proposals_abs(boxes, h, w),
    }


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
    annotations: Optional[str],
    label_map: str,
    *,
    frames: Optional[str] = None,
    frame_list: Optional[str] = None,
    videos: Optional[str] = None,
    exclusions: Optional[str] = None,
    proposals: Optional[str] = None,
    fps: Optional[float] = 30.0,
    first_second: int = 900,
    known_action_ids: Optional[Set[int]] = None,
    evaluator_type: str = "ava",
    label_map_fallback: Optional[str] = None,
) -> None:
    """
    Register an AVA-format split in ``DatasetCatalog`` / ``MetadataCatalog``.

    Metadata: everything in ``metadata`` plus ``action_classes``, ``action_ids``,
    ``pose_class_indices``, ``class_groups`` (read from ``label_map`` on first access),
    ``label_map_fallback``, ``evaluator_type``, ``fps``, ``first_second`` and the paths of the
    split's files under the keys of :data:`~acar_d2.data.layouts.SPLIT_FILE_METADATA`:
    ``gt_csv`` (``annotations``), ``label_map``, ``frame_root`` (``frames``), ``frame_list``,
    ``video_root`` (``videos``), ``exclusions``, ``proposal_file`` (``proposals``). Like
    detectron2's ``json_file`` / ``image_root``, these keys say which file a path is: in the dataset
    dicts, ``annotations`` and ``proposals`` are the parsed rows.

    Args: as :func:`load_ava_instances`, plus
        label_map_fallback (str or None): label map used (metadata and loading) when
            ``label_map`` is not on disk, e.g. ``ava_eval.label_map.AVA_LABEL_MAP_FILE``.
    """
    files = dict(frames=frames, frame_list=frame_list, videos=videos, exclusions=exclusions,
                 proposals=proposals)
    kwargs = dict(files, fps=fps, first_second=first_second, known_action_ids=known_action_ids)
    DatasetCatalog.register(
        name,
        # split_file_overrides: files set from the config (layouts.apply_dataset_config)
        lambda: load_ava_instances(
            annotations, resolve_label_map(label_map, label_map_fallback),
            **{**kwargs, **split_file_overrides(name)},
        ),
    )
    MetadataCatalog[name] = _ActionMetadata(name=name)
    MetadataCatalog.get(name).set(
        # the frame sources too, for python tools/validate_dataset.py --dataset NAME
        **split_file_metadata(annotations=annotations, label_map=label_map, **files),
        label_map_fallback=label_map_fallback,
        evaluator_type=evaluator_type,
        first_second=first_second,
        **metadata,
    )
    if fps is not None:  # None: the caller's loader sets it once known (synthetic world.json)
        MetadataCatalog.get(name).fps = float(fps)
