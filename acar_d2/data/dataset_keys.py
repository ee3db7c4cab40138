"""
The config keys a dataset decides: the number of classes, the mutually exclusive (pose) classes
and the clip source follow the training split unless the config sets them.

==================================  ==========  =============================================
key                                 "from the   resolved to
                                    dataset"
==================================  ==========  =============================================
``MODEL.ACTION_HEAD.NUM_CLASSES``   ``0``       the classes of the split's label map
``MODEL.ACTION_HEAD.POSE_CLASS_     ``[]``      its ``label_type: PERSON_MOVEMENT`` classes
INDICES``                                       (with ``POSE_SOFTMAX`` True)
``INPUT.CLIP.SOURCE``               ``""``      "frames" if the split has frame folders (or no
                                                registered split tells), else "video"
==================================  ==========  =============================================

The deciding split is ``DATASETS.TRAIN[0]`` (``DATASETS.TEST[0]`` for an evaluation config).
:func:`resolve_dataset_keys` runs once, in ``acar_d2.engine.setup_cfg``, so the resolved values
are what ``config.yaml`` of a run holds; a value set in the config that contradicts the split is
an error naming the key. Splits whose files are not on disk (builtin splits before their data
arrives) decide what their metadata knows without files, else nothing.
"""
import logging
from typing import List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["resolve_dataset_keys", "deciding_split", "split_classes", "split_clip_sources",
           "clip_source_from_config"]

logger = logging.getLogger(__name__)


def deciding_split(cfg) -> Optional[str]:
    """The split whose metadata decides: ``DATASETS.TRAIN[0]``, else ``DATASETS.TEST[0]``, else
    None."""
    names = list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST)
    return names[0] if names else None


def split_classes(name: str) -> Optional[tuple]:
    """
    ``(class names, pose class indices)`` of a registered split from its metadata (its label map,
    read on first access), or None when the split is not registered or its label map is not
    readable yet (the loader names the file when the split is loaded).
    """
    if name not in DatasetCatalog.list():
        return None
    meta = MetadataCatalog.get(name)
    try:
        names = [str(n) for n in meta.action_classes]
        poses = [int(i) for i in meta.get("pose_class_indices", [])]
    except (AttributeError, KeyError, OSError, ValueError) as e:
        logger.debug(f"{name}: classes not known before loading ({e})")
        return None
    return names, poses


def split_clip_sources(name: str) -> Optional[List[str]]:
    """The clip sources a registered split has ("frames", "video"), from its metadata (frame
    folder / frame list, video folder); None when it is not registered or names none."""
    if name not in DatasetCatalog.list():
        return None
    meta = MetadataCatalog.get(name).as_dict()
    sources = []
    if meta.get("frame_root") or meta.get("frame_list"):
        sources.append("frames")
    if meta.get("video_root"):
        sources.append("video")
    return sources or None


def _resolve_num_classes(cfg, split: str, classes: Optional[tuple]) -> None:
    head = cfg.MODEL.ACTION_HEAD
    if classes is None:
        return  # 0 stays: the heads' from_config names the key when they need a number
    names = classes[0]
    if head.NUM_CLASSES == 0:
        head.NUM_CLASSES = len(names)
        logger.info(f"MODEL.ACTION_HEAD.NUM_CLASSES {len(names)}: the label map of {split}")
    elif head.NUM_CLASSES != len(names):
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(
            f"MODEL.ACTION_HEAD.NUM_CLASSES is {head.NUM_CLASSES} but the label map of {split} has "
            f"{len(names)} classes ({shown}); set MODEL.ACTION_HEAD.NUM_CLASSES {len(names)}, or 0 "
            "to follow the dataset"
        )


def _resolve_pose_classes(cfg, split: str, classes: Optional[tuple]) -> None:
    head = cfg.MODEL.ACTION_HEAD
    if not head.POSE_SOFTMAX or classes is None:
        return
    names, poses = classes
    if len(head.POSE_CLASS_INDICES) == 0:
        head.POSE_CLASS_INDICES = list(poses)
        return
    if sorted(int(i) for i in head.POSE_CLASS_INDICES) != sorted(poses):
        said = [names[i] for i in poses]
        raise ValueError(
            f"MODEL.ACTION_HEAD.POSE_CLASS_INDICES is {list(head.POSE_CLASS_INDICES)} but the "
            f"label map of {split} makes {poses} exclusive ({said}: label_type PERSON_MOVEMENT); "
            "set MODEL.ACTION_HEAD.POSE_CLASS_INDICES [] to follow the dataset, or "
            "MODEL.ACTION_HEAD.POSE_SOFTMAX False for sigmoids only"
        )


def clip_source_from_config(cfg) -> str:
    """``INPUT.CLIP.SOURCE`` if set, else what the deciding split has: "frames" when it has frame
    folders (or no registered split tells), else "video"."""
    if cfg.INPUT.CLIP.SOURCE:
        return cfg.INPUT.CLIP.SOURCE
    split = deciding_split(cfg)
    sources = split_clip_sources(split) if split else None
    return sources[0] if sources else "frames"


def _resolve_clip_source(cfg) -> None:
    clip = cfg.INPUT.CLIP
    if not clip.SOURCE:
        clip.SOURCE = clip_source_from_config(cfg)
        logger.info(f"INPUT.CLIP.SOURCE {clip.SOURCE!r}: from {deciding_split(cfg)}")
    for name in dict.fromkeys(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)):
        sources = split_clip_sources(name)
        if sources is not None and clip.SOURCE not in sources:
            raise ValueError(
                f"INPUT.CLIP.SOURCE is {clip.SOURCE!r} but {name} has only "
                f"{' and '.join(sources)}; set INPUT.CLIP.SOURCE {sources[0]!r}, or \"\" to "
                "follow the dataset"
            )


def resolve_dataset_keys(cfg) -> None:
    """
    Set the "from the dataset" values of ``cfg`` (an unfrozen config; module docstring) from the
    deciding split's metadata, and check the values set explicitly against it.

    Raises:
        ValueError: a value set in the config contradicts the split, naming the key and the value
            to set.
    """
    split = deciding_split(cfg)
    classes = split_classes(split) if split else None
    _resolve_num_classes(cfg, split, classes)
    _resolve_pose_classes(cfg, split, classes)
    _resolve_clip_source(cfg)
