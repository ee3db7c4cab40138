"""
The synthetic AVA-format world ("aca_world", ``tools/make_synthetic_ava.py``) as detectron2 datasets.

Its class table is defined in code (``acar_d2.data.synthetic.scene.CLASSES``), so the metadata is
there without any file; the frame rate is read from the world's ``world.json`` when a split is
loaded. The files follow the AVA layout, so loading is :func:`load_ava_instances`.
"""
import json
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata

from ..layouts import FirstExisting, split_file_metadata
from ..synthetic.scene import CLASSES
from .ava import load_ava_instances

__all__ = ["register_aca_world", "load_aca_world"]


def load_aca_world(world: str, split: str):
    """
    Dataset dicts of one split ("train" or "val") of the world in folder ``world`` (the folder
    holding ``world.json``); docs/ARCHITECTURE.md "Dataset dicts".
    """
    meta_file = os.path.join(world, "world.json")
    if not os.path.isfile(meta_file):
        raise FileNotFoundError(
            f"{meta_file} not found: generate it with tools/make_synthetic_ava.py --out {world}"
        )
    with open(meta_file) as f:
        info = json.load(f)
    ann = os.path.join(world, "annotations")
    videos = os.path.join(world, "videos")
    return load_ava_instances(
        os.path.join(ann, f"{split}.csv"),
        os.path.join(ann, "label_map.pbtxt"),
        frames=os.path.join(world, "frames"),
        frame_list=os.path.join(world, "frame_lists", f"{split}.csv"),
        # The mp4 copies (same frames, same fps) serve INPUT.CLIP.SOURCE "video".
        videos=videos if os.path.isdir(videos) else None,
        exclusions=os.path.join(ann, f"{split}_excluded_timestamps.csv"),
        proposals=os.path.join(ann, f"dense_proposals_{split}.pkl"),
        fps=info["fps"],
        first_second=info.get("first_second", 0),
    )


class _WorldMetadata(Metadata):
    """Metadata whose ``fps`` is read from the world's ``world.json`` on first access (the world
    may be generated after the split is registered), for ``python tools/validate_dataset.py``."""

    def __getattr__(self, key):
        if key == "fps" and "world" in self.__dict__:
            meta_file = os.path.join(self.__dict__["world"], "world.json")
            if os.path.isfile(meta_file):
                with open(meta_file) as f:
                    self.__dict__["fps"] = float(json.load(f)["fps"])
                return self.__dict__["fps"]
        return super().__getattr__(key)


def register_aca_world(world: str, prefix: str = "aca_world") -> None:
    """
    Register ``{prefix}_train`` and ``{prefix}_val`` for the world in folder ``world``.

    Importing acar_d2 registers ``aca_world_{train,val}`` for ``$ACAR_DATASETS/aca_world``; tests
    and tools register other worlds under other prefixes.
    """
    ann = os.path.join(world, "annotations")
    groups = {}
    for i, c in enumerate(CLASSES):
        groups.setdefault(c.group, []).append(i)
    for split in ("train", "val"):
        name = f"{prefix}_{split}"

        def load(split=split, name=name):
            dicts = load_aca_world(world, split)
            if dicts:
                MetadataCatalog.get(name).fps = float(dicts[0]["fps"])
            return dicts

        DatasetCatalog.register(name, load)
        MetadataCatalog[name] = _WorldMetadata(name=name)
        videos = os.path.join(world, "videos")
        MetadataCatalog.get(name).set(
            world=world,
            action_classes=[c.name for c in CLASSES],
            action_ids=[c.id for c in CLASSES],
            pose_class_indices=list(groups.get("pose", [])),
            class_groups=groups,
            evaluator_type="ava",
            first_second=0,  # synthetic frame k shows time k / fps (contract in world.json)
            # the frame sources too, for python tools/validate_dataset.py --dataset NAME
            **split_file_metadata(
                annotations=os.path.join(ann, f"{split}.csv"),
                label_map=os.path.join(ann, "label_map.pbtxt"),
                exclusions=os.path.join(ann, f"{split}_excluded_timestamps.csv"),
                proposals=os.path.join(ann, f"dense_proposals_{split}.pkl"),
                frames=os.path.join(world, "frames"),
                frame_list=FirstExisting((os.path.join(world, "frame_lists", f"{split}.csv"),),
                                         required=False),
                videos=videos if os.path.isdir(videos) else None,
            ),
        )
