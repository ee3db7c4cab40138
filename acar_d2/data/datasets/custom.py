"""
Your own AVA-format data in one call: :func:`register_ava_format_dataset`.

It is :func:`~acar_d2.data.datasets.ava.register_ava_instances` (same argument names) with
keyword-only files and the defaults of one's own videos (``first_second`` 0), in the spirit of
detectron2's ``register_coco_instances(name, metadata, json_file, image_root)``: the split is then usable in ``DATASETS.TRAIN`` / ``DATASETS.TEST`` (evaluated by the
AVA frame-mAP evaluator) and by ``python tools/validate_dataset.py --dataset NAME``.
"""
from typing import Optional

from .ava import register_ava_instances

__all__ = ["register_ava_format_dataset"]


def register_ava_format_dataset(
    name: str,
    *,
    annotations: Optional[str],
    label_map: str,
    frames: Optional[str] = None,
    videos: Optional[str] = None,
    frame_list: Optional[str] = None,
    exclusions: Optional[str] = None,
    proposals: Optional[str] = None,
    fps: float = 30.0,
    first_second: int = 0,
    metadata: Optional[dict] = None,
) -> None:
    """
    Register one split of an AVA-format dataset.

    Args:
        name: the split name (e.g. "mydata_train").
        annotations: ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id`` CSV (normalized
            boxes, label-map ids, timestamp in seconds); None for a split without labels.
        label_map: pbtxt ``item { name: "..." id: N }``; ids outside AVA's 1..80 need a
            ``label_type`` line (PERSON_MOVEMENT = mutually exclusive pose classes).
        frames: folder of ``<video_id>/`` frame folders (any ``<prefix><number>.<ext>`` names,
            numbered from 1); and/or ``videos``: folder of ``<video_id>.mp4``.
        frame_list: optional PySlowFast frame list (paths relative to ``frames``).
        exclusions: optional ``video_id,timestamp`` CSV of key frames not to use.
        proposals: optional person boxes (PySlowFast CSV, MMAction2 or ACAR-Net pickle); the
            key frames of a split without annotations come from it.
        fps, first_second: key frame of second t = 0-based frame ``round((t - first_second) * fps)``
            (AVA: 30 and 900; own videos annotated from their start: 0).
        metadata: extra metadata.
    """
    if frames is None and videos is None:
        raise ValueError(f"register_ava_format_dataset({name!r}): give frames= and/or videos=")
    register_ava_instances(
        name, dict(metadata or {}), annotations, label_map, frames=frames, frame_list=frame_list,
        videos=videos, exclusions=exclusions, proposals=proposals, fps=fps,
        first_second=first_second,
    )
